"""Admin of remittance accounts (REM-1..3): a thin layer over ``remittances.services.accounts``.

- Every remittance account is read-only here: numbers are generated (dedicated) or registered by
  ``register_receiving_account`` (shared), and never edited (REM-1, trigger ``rem_never_reassigned``).
- "Issue dedicated account" is a custom view for account managers (``issue_remittanceaccount``):
  pick a credit-approved account by UID or id; the service refuses what REM-1 / CRED-1 forbid.
- Suspend / resume (``suspend_remittanceaccount``) are actions behind the confirmation page, and
  buttons on the account's page (disabled with the rule when resuming is refused, CRED-1).
- "Download Payment Request Form" (REM-3) on the change page and in the list returns the PDF to
  anyone who may view remittance accounts (account managers and finance staff).
The two pages that need more than Django's stock templates (the changelist's extra button and
the issue page) use templates compiled from the strings below, so this area stays in one module.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core import signing
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from billing_backoffice.admin_site import (
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    has_model_perm,
    refusal_text,
    run_service_action,
)
from billing_backoffice.admin_confirm import (
    USED,
    ObjectToolsMixin,
    Preview,
    confirm_page,
    confirmed_action,
    is_confirming,
    object_tool,
    use_token,
)
from billing_backoffice.errors import BillingError
from payments.models import Account
from payments.admin.account_field import AccountChoiceField
from remittances import numbering
from remittances.models import RemittanceAccount
from remittances.pdf import payment_request_form_filename, payment_request_form_pdf
from remittances.services.accounts import (
    dedicated_account_issue,
    dedicated_issue_refusal,
    dedicated_number_preview,
    remittance_account_resume,
    remittance_account_suspend,
    resume_refusal,
)

Kind = RemittanceAccount.Kind
Status = RemittanceAccount.Status
EMPTY = "—"
ISSUE_SALT = "remittances.issue-dedicated-account"

CHANGE_LIST_TEMPLATE = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}
  {% if can_issue %}<li><a href="{{ issue_url }}" class="addlink">Issue dedicated account</a></li>{% endif %}
  {{ block.super }}
{% endblock %}"""

ISSUE_TEMPLATE = """{% extends "admin/base_site.html" %}
{% load i18n admin_urls static %}
{% block extrahead %}{{ block.super }}<script src="{% url 'admin:jsi18n' %}"></script>{{ form.media }}{% endblock %}
{% block extrastyle %}{{ block.super }}<link rel="stylesheet" href="{% static 'admin/css/forms.css' %}">{% endblock %}
{% block breadcrumbs %}<div class="breadcrumbs">
  {% include "admin/_changelist_crumbs.html" %}
  {{ title }}
</div>{% endblock %}
{% block content %}<div id="content-main">
  <p>A dedicated account is issued once per cloud account and keeps its number for ever (REM-1).
     Only credit-approved, active accounts get one (CRED-1). Beneficiary, bank, SWIFT/BIC and currency
     come from the configured receiving bank: {{ bank.name }} ({{ bank.bic }}), {{ bank.currency }}.</p>
  <form method="post" id="issue_form" novalidate>{% csrf_token %}
    {% if form.non_field_errors %}<p class="errornote">{{ form.non_field_errors|join:" " }}</p>{% endif %}
    <fieldset class="module aligned">
      <div class="form-row{% if form.account.errors %} errors{% endif %}">
        {{ form.account.errors }}
        <div class="flex-container">{{ form.account.label_tag }} {{ form.account }}</div>
        <div class="help">{{ form.account.help_text }}</div>
      </div>
    </fieldset>
    <div class="submit-row"><input type="submit" class="default" value="Issue dedicated account"></div>
  </form>
  {% if waiting %}
  <div class="module" style="margin-top: 2em">
    <h2>Credit-approved accounts without a dedicated account (newest {{ waiting|length }})</h2>
    <table style="width: 100%">
      <thead><tr><th>UID</th><th>Name</th><th>Credit limit</th><th></th></tr></thead>
      <tbody>{% for account in waiting %}
        <tr><td>{{ account.uid }}</td><td>{{ account.name }}</td>
            <td>{{ account.credit_limit }} {{ account.credit_currency }}</td>
            <td><form method="post" style="margin: 0">{% csrf_token %}
              <input type="hidden" name="account" value="{{ account.pk }}">
              <input type="submit" value="Issue"></form></td></tr>
      {% endfor %}</tbody>
    </table>
  </div>
  {% endif %}
</div>{% endblock %}"""


def _template(source: str):
    return engines["django"].from_string(source)


class IssueDedicatedAccountForm(forms.Form):
    def __init__(self, *args, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"] = AccountChoiceField(
            RemittanceAccount._meta.get_field("account"), admin_site, label="Cloud account"
        )


SUSPEND_INTRO = (
    "A suspended account keeps its number and owner for ever (REM-1); its Payment Request Form is no longer "
    "offered. Transfers that still arrive are credited and counted in the import summary as credited on a "
    "suspended account. It can be resumed with the same number."
)
RESUME_INTRO = (
    "Resuming takes the account back into use with the same number (a dedicated one only while its cloud "
    "account is credit-approved, CRED-1)."
)


def suspension_preview(remittance_account: RemittanceAccount, *, suspend: bool) -> Preview:
    """What suspending (resuming) does to one remittance account, or the CRED-1 refusal."""
    owner = remittance_account.account
    number = numbering.format_number(remittance_account.number)
    label = f"{number} ({owner.uid} {owner.name})" if owner else f"{number} (shared)"
    target = Status.SUSPENDED if suspend else Status.ACTIVE
    if remittance_account.status == target:
        return Preview(label, [("Status", f"Already {target.label.lower()}: nothing changes.")])
    refusal = None if suspend else resume_refusal(remittance_account)
    if refusal is not None:
        return Preview(label, refusal=refusal.rule_text)
    return Preview(label, [("Status", f"{remittance_account.get_status_display()} -> {target.label}")])


@admin.register(RemittanceAccount)
class RemittanceAccountAdmin(ObjectToolsMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    change_form_template = "admin/change_form_with_tools.html"
    list_display = (
        "number_display", "kind", "status", "account_link", "currency", "bank_name", "bic", "issued_at",
        "form_link",
    )
    list_filter = ("kind", "status", "currency")
    list_select_related = ("account",)
    search_fields = ("number",)  # routed by get_search_results
    search_help_text = "Exact account number or IBAN (spaces allowed), or a cloud account's UID."
    raw_id_fields = ("account", "issued_by")
    actions = ("suspend_selected", "resume_selected")
    fieldsets = (
        (None, {"fields": ("number_display", "kind", "status", "account_link", "form_link")}),
        ("Bank", {"fields": ("beneficiary_name", "bank_name", "bic", "bank_country", "currency")}),
        ("History", {"fields": ("issued_by", "issued_at", "suspended_at")}),
    )
    readonly_fields = (
        "number_display", "kind", "status", "account_link", "form_link", "beneficiary_name", "bank_name",
        "bic", "bank_country", "currency", "issued_by", "issued_at", "suspended_at",
    )

    # --- permissions backed by Meta.permissions (SEC-3) -------------------------------------

    def has_issue_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "issue_remittanceaccount")

    def has_suspend_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "suspend_remittanceaccount")

    # --- list and search ----------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = numbering.normalise(search_term)
        if not term:
            return queryset, False
        # Resolve the UID first so the row filter is an OR of two indexed lookups (number, account_id).
        account_ids = list(Account.objects.filter(uid=term).values_list("pk", flat=True)) if term.isdigit() else []
        return queryset.filter(Q(number=term) | Q(account_id__in=account_ids)), False

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: RemittanceAccount) -> str:
        return numbering.format_number(obj.number)

    @admin.display(description="cloud account", ordering="account__uid")
    def account_link(self, obj: RemittanceAccount):
        if obj.account_id is None:
            return "shared (no cloud account)"
        url = reverse("admin:payments_account_change", args=[obj.account_id])
        return format_html('<a href="{}">{}</a> {}', url, obj.account.uid, obj.account.name)

    @admin.display(description="Payment Request Form")
    def form_link(self, obj: RemittanceAccount):
        if obj.kind != Kind.DEDICATED:
            return EMPTY
        if obj.status != Status.ACTIVE:
            return "suspended"
        url = reverse("admin:remittances_remittanceaccount_payment_request_form", args=[obj.pk])
        return format_html('<a href="{}">Download PDF</a>', url)

    # --- actions --------------------------------------------------------------------------------

    @admin.action(description="Suspend (the number stays reserved)", permissions=["suspend"])
    def suspend_selected(self, request, queryset):
        return self._suspension_action(request, queryset, suspend=True)

    @admin.action(description="Resume", permissions=["suspend"])
    def resume_selected(self, request, queryset):
        return self._suspension_action(request, queryset, suspend=False)

    def _suspension_action(self, request, queryset, *, suspend: bool):
        service = remittance_account_suspend if suspend else remittance_account_resume
        verb = "Suspended" if suspend else "Resumed"

        def perform(selected, reason):
            now = timezone.now()
            run_service_action(
                self, request, selected,
                lambda ra: service(remittance_account_id=ra.pk, actor=request.user, now=now),
                done_message=f"{verb} {{count}} remittance account(s).", log_message=f"{verb} through the admin.",
                reason=reason,
            )

        return confirmed_action(
            self, request, queryset.select_related("account"),
            action="suspend_selected" if suspend else "resume_selected",
            title="Suspend remittance accounts" if suspend else "Resume remittance accounts",
            intro=SUSPEND_INTRO if suspend else RESUME_INTRO,
            preview=lambda accounts: [suspension_preview(ra, suspend=suspend) for ra in accounts],
            perform=perform,
        )

    def object_tools(self, request, remittance_account: RemittanceAccount) -> list:
        if not self.has_suspend_permission(request):
            return []
        if remittance_account.status == Status.ACTIVE:
            return [object_tool("suspend_selected", "Suspend")]
        return [object_tool("resume_selected", "Resume", resume_refusal(remittance_account))]

    # --- custom views ---------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path("issue/", self.admin_site.admin_view(self.issue_view), name="%s_%s_issue" % info),
            path(
                "<int:object_id>/payment-request-form/",
                self.admin_site.admin_view(self.payment_request_form_view),
                name="%s_%s_payment_request_form" % info,
            ),
        ]
        return custom + super().get_urls()

    @cached_property
    def change_list_template(self):
        return _template(CHANGE_LIST_TEMPLATE)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_issue": self.has_issue_permission(request),
            "issue_url": reverse("admin:remittances_remittanceaccount_issue"),
        }
        return super().changelist_view(request, extra_context)

    def issue_view(self, request):
        """REM-3: an account manager issues a cloud account's dedicated remittance account, after a
        confirmation page showing the number it will get (drawn, not consumed: REM-1)."""
        if not self.has_issue_permission(request):
            raise PermissionDenied("Issuing dedicated accounts needs the permission 'Can issue dedicated "
                                   "remittance accounts' (Account managers).")
        initial = {"account": request.GET.get("account", "")}
        form = IssueDedicatedAccountForm(request.POST or None, initial=initial, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            account = form.cleaned_data["account"]
            if not is_confirming(request):
                return self._issue_confirmation(request, account, dedicated_number_preview())
            issued = self._issue_confirmed(request, form, account)
            if issued is not None:
                return HttpResponseRedirect(reverse("admin:remittances_remittanceaccount_change", args=[issued.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Issue dedicated remittance account",
            "form": form,
            "bank": settings.REMITTANCE_BANK,
            "waiting": self._waiting_accounts(),
        }
        return TemplateResponse(request, _template(ISSUE_TEMPLATE), context)

    def _issue_confirmation(self, request, account: Account, number: str, warning: str = ""):
        bank = settings.REMITTANCE_BANK
        refusal = dedicated_issue_refusal(account)
        label = f"Cloud account {account.uid} {account.name}"
        preview = Preview(label, refusal=refusal.rule_text) if refusal else Preview(label, [
            ("Number to be issued", numbering.format_number(number)),
            ("Bank", f"{bank['name']} ({bank['bic'].upper()}), {bank['country'].upper()}"),
            ("Currency", bank["currency"].upper()),
            ("Beneficiary", bank["beneficiary"]),
        ])
        return confirm_page(
            self, request, title="Issue dedicated remittance account",
            intro="The number belongs to this cloud account for ever and is never reassigned (REM-1); the "
            "Payment Request Form can be downloaded once it is issued (REM-3).",
            previews=[preview], hidden=[("account", str(account.pk)), ("number", signing.dumps(
                {"account": account.pk, "number": number}, salt=ISSUE_SALT))],
            warning=warning, cancel_url=reverse("admin:remittances_remittanceaccount_issue"),
            action_url=reverse("admin:remittances_remittanceaccount_issue"),
        )

    def _issue_confirmed(self, request, form, account: Account) -> RemittanceAccount | None:
        """The confirming POST: the number shown (signed, for this account) goes to the service,
        which checks REM-1/CRED-1 again and takes the number only if it is still free."""
        try:
            shown = signing.loads(request.POST.get("number", ""), salt=ISSUE_SALT)
        except signing.BadSignature:
            shown = {}
        number = shown.get("number") if shown.get("account") == account.pk else None
        if number is None:
            form.add_error(None, "The confirmation did not come from this page; nothing was issued.")
            return None
        if not use_token(request):  # a double submit issues nothing twice (the service refuses anyway)
            self.message_user(request, USED, messages.WARNING)
            return None
        try:
            issued = dedicated_account_issue(account_id=account.pk, actor=request.user, now=timezone.now(), number=number)
        except BillingError as error:
            form.add_error(None, refusal_text(str(account), error))
            return None
        text = f"Issued dedicated account {numbering.format_number(issued.number)} for {account}."
        self.log_addition(request, issued, text)
        self.message_user(request, text, messages.SUCCESS)
        return issued

    def _waiting_accounts(self, limit: int = 20) -> list[Account]:
        dedicated = RemittanceAccount.objects.filter(account_id=OuterRef("pk"), kind=Kind.DEDICATED)
        return list(
            Account.objects.filter(credit_approved=True, status=Account.Status.ACTIVE)
            .exclude(Exists(dedicated))
            .order_by("-pk")[:limit]
        )

    def payment_request_form_view(self, request, object_id: int):
        """REM-3: the PDF, for anyone who may view remittance accounts."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        remittance_account = get_object_or_404(
            RemittanceAccount.objects.select_related("account"), pk=object_id
        )
        try:
            pdf = payment_request_form_pdf(remittance_account=remittance_account, now=timezone.now())
        except BillingError as error:
            self.message_user(request, refusal_text(str(remittance_account), error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:remittances_remittanceaccount_change", args=[object_id]))
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{payment_request_form_filename(remittance_account)}"'
        response["Cache-Control"] = "private, no-store"
        return response
