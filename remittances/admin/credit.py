"""Credit applications in the admin: the account managers' work queue (CRED-1, CRED-2, CRED-3).

- The list is the queue: filter by status, source, currency, submission date, "my accounts";
  search by account UID / id (digits) or name.
- "Add" is "record a credit application" for a customer: a custom form that calls
  ``credit_request_submit(source=staff, recorded_by=request.user)``; the admin never saves the
  model itself. Every field is read-only on the change page, decided applications included.
- Approve / reject are custom views asking for a note, reached from buttons on the change page,
  shown only to holders of ``approve_creditlimitrequest``. The recorder sees them disabled with
  the CRED-2 reason; a crafted POST by the recorder is refused by the service (and the database).
  Refusals are shown with the rule that refused.

The two page templates are short strings compiled here, so this area needs no template files.
"""

from __future__ import annotations

from functools import cache

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template import engines
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_site import (
    MAX_ID,
    BigTableAdminMixin,
    has_model_perm,
    log_done,
    money_column,
    refusal_text,
)
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from billing_backoffice.money import COLUMN_MAX, AmountFormField, CurrencyFormField
from payments.admin.account_field import AccountChoiceField
from payments.services.ledger import account_balance
from remittances.models import CreditLimitRequest
from remittances.work_queues import CREDIT_QUEUES
from billing_backoffice.work_queues import queue_filter
from remittances.services import credit as services

Status = CreditLimitRequest.Status
CRED_2_REASON = "CRED-2: you recorded this application; another account manager must decide it."

# --- templates --------------------------------------------------------------------------------

# The change page: the admin's own, plus the decision buttons in the object tools.
CHANGE_FORM = """{% extends "admin/change_form.html" %}
{% block object-tools-items %}
  {% if credit_decision %}
    {% if credit_decision.recorder %}
      <li><span class="button" aria-disabled="true" title="{{ credit_decision.reason }}">Approve</span></li>
      <li><span class="button" aria-disabled="true" title="{{ credit_decision.reason }}">Reject</span></li>
    {% else %}
      <li><a href="{{ credit_decision.approve_url }}" class="button">Approve</a></li>
      <li><a href="{{ credit_decision.reject_url }}" class="button">Reject</a></li>
    {% endif %}
  {% endif %}
  {{ block.super }}
{% endblock %}
{% block form_top %}
  {% if credit_decision.recorder %}<p class="errornote">{{ credit_decision.reason }}</p>{% endif %}
{% endblock %}
"""

# A one-form page (record an application; approve or reject with a note).
FORM_PAGE = """{% extends "admin/base_site.html" %}
{% load admin_urls %}
{% block extrahead %}{{ block.super }}{{ media }}{% endblock %}
{% block breadcrumbs %}<div class="breadcrumbs">
  {% include "admin/_changelist_crumbs.html" %}
  {{ title }}
</div>{% endblock %}
{% block content %}
  {% if application %}
    <table>
      <tr><th>Account</th><td>{{ application.account }}</td></tr>
      <tr><th>Requested limit</th><td>{{ application.requested_limit }} {{ application.currency }}</td></tr>
      <tr><th>Current credit</th><td>{{ current_credit }}</td></tr>
      <tr><th>Source</th><td>{{ application.get_source_display }}{% if application.recorded_by %} ({{ application.recorded_by }}){% endif %}</td></tr>
      <tr><th>Justification</th><td>{{ application.justification|linebreaksbr }}</td></tr>
    </table>
  {% endif %}
  {% if intro %}<p>{{ intro }}</p>{% endif %}
  <form method="post" novalidate>{% csrf_token %}
    {% if form.non_field_errors %}<div class="errornote">{{ form.non_field_errors }}</div>{% endif %}
    <fieldset class="module aligned">
      {% for field in form %}
        <div class="form-row">{{ field.errors }}{{ field.label_tag }} {{ field }}
          {% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}</div>
      {% endfor %}
    </fieldset>
    <div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
  </form>
{% endblock %}
"""


@cache
def _template(source: str):
    return engines["django"].from_string(source)


# --- forms ------------------------------------------------------------------------------------


class RecordApplicationForm(ForgetsCardNumbers, forms.Form):
    """What the account manager types in; the service decides whether it may be filed."""

    requested_limit = AmountFormField(
        allow_zero=True, maximum=COLUMN_MAX, min_value=0, help_text="0 revokes the account's credit approval."
    )
    currency = CurrencyFormField(initial="USD")  # I6: the accepted ISO 4217 codes (billing_backoffice.money)
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, validators=[card_number_free]  # SEC-1
    )

    field_order = ("account", "requested_limit", "currency", "justification")

    def __init__(self, *args, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        # UID or name with autocomplete, never a <select> over every account (big table).
        self.fields["account"] = AccountChoiceField(CreditLimitRequest._meta.get_field("account"), admin_site)
        self.order_fields(self.field_order)


class DecisionForm(ForgetsCardNumbers, forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, required=False, validators=[card_number_free]
    )

    def __init__(self, *args, note_required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["note"].required = note_required
        self.fields["note"].help_text = "Required: the customer is told why." if note_required else "Optional."


# --- list filters -------------------------------------------------------------------------------


class MyAccountsFilter(admin.SimpleListFilter):
    """The applications of the accounts the signed-in manager looks after."""

    title = "account manager"
    parameter_name = "manager"

    def lookups(self, request, model_admin):
        return [("me", "My accounts")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(account__account_manager=request.user)
        return queryset


# --- the admin -------------------------------------------------------------------------------


@admin.register(CreditLimitRequest)
class CreditLimitRequestAdmin(BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "account_link", "limit_display", "status", "source", "recorded_by", "submitted_at", "decided_by",
        "decided_at",
    )
    list_display_links = ("id",)
    list_filter = (queue_filter(CREDIT_QUEUES), "status", "source", "currency", "submitted_at", MyAccountsFilter)
    list_select_related = ("account", "recorded_by", "decided_by")
    raw_id_fields = ("account", "recorded_by", "decided_by")
    search_fields = ("account__uid",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits), or part of the account name."
    fieldsets = (
        (None, {"fields": ("account", "account_credit", "requested_limit", "currency", "justification")}),
        ("Filed", {"fields": ("source", "recorded_by", "submitted_at")}),
        ("Decision", {"fields": ("status", "decided_by", "decided_at", "decision_note")}),
    )
    # Everything is written by the services: the change page is a read-only record (SEC-2).
    readonly_fields = tuple(f for _, spec in fieldsets for f in spec["fields"])

    # --- permissions -----------------------------------------------------------------------

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_approve_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "approve_creditlimitrequest")

    # --- queue ----------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            by_id = {"account_id": int(term)} if int(term) <= MAX_ID else {"pk__in": []}
            return queryset.filter(account__uid=term) | queryset.filter(**by_id), False
        return queryset.filter(account__name__icontains=term), False

    limit_display = money_column("requested_limit")

    @admin.display(description="account", ordering="account__uid")
    def account_link(self, obj: CreditLimitRequest):
        try:
            url = reverse("admin:payments_account_change", args=[obj.account_id])
        except NoReverseMatch:  # accounts not registered in this admin site
            return f"{obj.account.uid} {obj.account.name}"
        return format_html('<a href="{}">{}</a> {}', url, obj.account.uid, obj.account.name)

    @admin.display(description="account's credit now")
    def account_credit(self, obj: CreditLimitRequest):
        return _credit_now(obj)

    # --- pages ----------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/approve/", view(self.approve_view), name="%s_%s_approve" % info),
            path("<path:object_id>/reject/", view(self.reject_view), name="%s_%s_reject" % info),
            *super().get_urls(),
        ]

    @property
    def change_form_template(self):
        return _template(CHANGE_FORM)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.status == Status.SUBMITTED and self.has_approve_permission(request):
            recorder = obj.recorded_by_id is not None and obj.recorded_by_id == request.user.pk
            extra_context["credit_decision"] = {
                "recorder": recorder,
                "reason": CRED_2_REASON if recorder else "",
                "approve_url": self._url("approve", obj.pk),
                "reject_url": self._url("reject", obj.pk),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        """Record a credit application for a customer (source staff, CRED-2 recorder = you)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RecordApplicationForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                application = services.credit_request_submit(
                    account_id=data["account"].pk, requested_limit=data["requested_limit"],
                    currency=data["currency"], justification=data["justification"],
                    source=CreditLimitRequest.Source.STAFF, recorded_by=request.user, now=timezone.now(),
                )
            except BillingError as error:
                form.add_error(None, refusal_text("Not recorded", error))
            else:
                self.log_addition(request, application, f"Recorded credit application #{application.pk} (staff).")
                self.message_user(
                    request,
                    f"Recorded credit application #{application.pk}. Another account manager must "
                    "approve it (CRED-2); the limit applies only once approved (CRED-1).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._url("change", application.pk))
        return self._form_page(
            request, form, title="Record a credit application", submit_label="Record",
            intro="The limit takes effect only when another account manager approves it (CRED-1, CRED-2).",
        )

    def approve_view(self, request, object_id):
        return self._decision_view(request, object_id, approve=True)

    def reject_view(self, request, object_id):
        return self._decision_view(request, object_id, approve=False)

    def _decision_view(self, request, object_id, *, approve: bool):
        # SEC-3: the permission first, so a role without it learns nothing about the object.
        if not self.has_approve_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        label = f"Credit application #{obj.pk}"
        form = DecisionForm(request.POST or None, note_required=not approve)
        if request.method == "POST" and form.is_valid():
            decide = services.credit_request_approve if approve else services.credit_request_reject
            try:
                decide(request_id=obj.pk, actor=request.user, note=form.cleaned_data["note"], now=timezone.now())
            except BillingError as error:
                self.message_user(request, refusal_text(label, error), messages.ERROR)
            else:
                done = "approved" if approve else "rejected"
                obj.refresh_from_db()
                text = f"{label} {done}. {_credit_now(obj)}"
                log_done(self, request, obj, text, form.cleaned_data["note"])  # Recent actions, History
                self.message_user(request, text, messages.SUCCESS)
            return HttpResponseRedirect(self._url("change", obj.pk))
        # On GET, say at once why the decision cannot be made; the POST is checked by the service.
        if obj.status != Status.SUBMITTED:
            self.message_user(request, f"{label} is already {obj.get_status_display().lower()}.", messages.WARNING)
            return HttpResponseRedirect(self._url("change", obj.pk))
        if obj.recorded_by_id is not None and obj.recorded_by_id == request.user.pk:
            self.message_user(request, f"{label}: {CRED_2_REASON}", messages.ERROR)
            return HttpResponseRedirect(self._url("change", obj.pk))
        verb = "Approve" if approve else "Reject"
        return self._form_page(
            request, form, title=f"{verb} credit application #{obj.pk}", submit_label=verb, application=obj,
            current_credit=_credit_now(obj),
            intro="Approval sets the account's credit limit at once (CRED-1); it is refused below what the "
            "account owes (CRED-3)." if approve else "The account's credit stays as it is.",
        )

    def _form_page(self, request, form, **context) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            **context,
        }
        return HttpResponse(_template(FORM_PAGE).render(context, request))

    def _url(self, name: str, pk: int) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[pk])


def _credit_now(obj: CreditLimitRequest) -> str:
    """The account's credit as it stands, and what it owes in the application's currency."""
    account = obj.account
    credit = f"{account.credit_limit} {account.credit_currency}" if account.credit_approved else "no credit approval"
    balance = account_balance(account_id=account.pk, currency=obj.currency)
    owes = f"; owes {-balance} {obj.currency}" if balance < 0 else ""
    return f"Account {account.uid}: {credit}{owes}."
