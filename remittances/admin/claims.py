"""Claims in the admin: the account managers' and finance staff's work queues (CLM-1..4).

- The changelist is the queue: the "work queue" filter gives "to review" (account managers:
  submitted claims with their transfer found), "waiting for the transfer" and "to approve"
  (finance: reviewed claims, minus the ones the signed-in user initiated or reviewed, CLM-3);
  plus status, source, currency and submission date. Search: digits -> claim id, account UID or
  id; anything else -> exact bank reference.
- Every field is read-only; nothing is added or saved through the model form. Steps are custom
  views (``get_urls`` + ``admin_view``) with a small form, each calling one service:
  review (note), approve (confirmation), reject (reason, CLM-4), attach a transfer to a waiting
  claim, and "initiate a claim" from an unmatched transaction for account managers, with the
  suggested accounts listed. The proof is served by a permission-checked download view.
- Buttons appear only for holders of the permission and not for the initiator/reviewer where
  CLM-3 forbids; a crafted POST goes to the service anyway, which refuses and changes nothing.
  Refusals are shown with the rule ID (``Claim #7: CLM-3: ...``).
- Export of the (filtered) list to CSV/XLSX, streamed (``billing_backoffice.admin_export``), for
  anyone who may view claims; text cells that a spreadsheet would run as a formula are prefixed
  with ``'``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from import_export import fields as ie_fields

from billing_backoffice.admin_export import StreamedExportMixin, StreamedResource
from billing_backoffice.admin_site import (
    MAX_ID,
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    digits_pk,
    has_model_perm,
    money_column,
    refusal_text,
)
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from payments.admin.account_field import AccountChoiceField
from payments.admin.display import account_link
from payments.selectors import account_find, account_ids_named_by
from remittances.admin.claim_pages import TEMPLATES, ClaimPagesMixin
from remittances.claim_steps import available_steps, decision_blocked
from remittances.models import BankTransaction, RemittanceAccount, RemittanceClaim
from remittances.work_queues import CLAIM_QUEUES
from billing_backoffice.work_queues import queue_filter
from remittances.selectors import claim_suggestions
from remittances.services import claims as services

TxnStatus = BankTransaction.Status
EMPTY = "—"


# --- forms --------------------------------------------------------------------------------------


class ReviewForm(ForgetsCardNumbers, forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, required=False,
        validators=[card_number_free],  # SEC-1: refused before it is stored or audited
        help_text="What confirms that the transfer belongs to this customer.",
    )


class ApproveForm(forms.Form):
    confirm = forms.BooleanField(
        required=True, label="I checked the review and the transfer",
        help_text="Approving credits the transfer's amount to the account's balance (once).",
    )


class RejectForm(ForgetsCardNumbers, forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, required=True,
        validators=[card_number_free],  # SEC-1
        help_text="Required (CLM-4); recorded on the claim. The transfer becomes claimable again.",
    )


class AttachForm(forms.Form):
    bank_transaction = forms.IntegerField(
        min_value=1, max_value=MAX_ID, label="Bank transaction id",
        help_text="An unmatched credit on the shared account with the claim's amount and currency.",
    )


class InitiateForm(forms.Form):
    """The account manager chooses the account the transfer belongs to."""

    suggested = forms.ChoiceField(
        required=False, widget=forms.RadioSelect, label="Suggested account",
    )
    account = AccountChoiceField(RemittanceClaim._meta.get_field("account"), required=False, label="Or another account",
                                 help_text="Its UID or part of its name; takes precedence over a suggestion.")
    proof = forms.FileField(required=False, help_text="Optional evidence: PDF, PNG or JPEG, at most 10 MB.")

    def __init__(self, *args, suggestions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["suggested"].choices = [
            (s.account.uid, f"{s.account.name} ({s.account.uid}), score {s.score}: {'; '.join(s.reasons)}")
            for s in suggestions
        ]
        if not suggestions:
            del self.fields["suggested"]

    def clean(self):
        data, term = super().clean(), self.cleaned_data.get("suggested")
        if self.has_error("account"):
            return data
        if not (data.get("account") or term):
            raise forms.ValidationError("Choose a suggested account or enter an account UID or id.")
        account = data.get("account") or account_find(term)
        if account is None:
            raise forms.ValidationError(f"No account with UID or id {term}.")
        data["account_obj"] = account
        return data


# --- export ----------------------------------------------------------------------------------------

class RemittanceClaimResource(StreamedResource):
    """CSV/XLSX export of claims; payer names, references and notes come from outside."""

    account_uid = ie_fields.Field(column_name="account_uid", attribute="account__uid")
    account_name = ie_fields.Field(column_name="account_name", attribute="account__name")
    initiated_by = ie_fields.Field(column_name="initiated_by", attribute="initiated_by__username")
    reviewed_by = ie_fields.Field(column_name="reviewed_by", attribute="reviewed_by__username")
    decided_by = ie_fields.Field(column_name="decided_by", attribute="decided_by__username")

    class Meta:
        model = RemittanceClaim
        fields = (
            "id", "submitted_at", "status", "source", "account_uid", "account_name", "amount", "currency",
            "value_date", "payer_name", "bank_reference", "bank_transaction", "initiated_by", "reviewed_by",
            "reviewed_at", "decided_by", "decided_at", "note",
        )
        export_order = fields


# --- list filters ---------------------------------------------------------------------------------


class CurrencyFilter(admin.SimpleListFilter):
    """Currencies of the receiving accounts (a small table), never a DISTINCT over all claims."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        codes = RemittanceAccount.objects.order_by("currency").values_list("currency", flat=True).distinct()
        return [(c, c) for c in codes]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


# --- the admin ------------------------------------------------------------------------------------


@admin.register(RemittanceClaim)
class RemittanceClaimAdmin(ClaimPagesMixin, StreamedExportMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resource_classes = [RemittanceClaimResource]  # streamed, for those who may view claims
    change_form_template = f"{TEMPLATES}/change_form.html"
    change_list_template = f"{TEMPLATES}/change_list.html"
    list_display = (
        "id", "account_display", "amount_display", "status", "source", "transfer", "submitted_at",
    )
    list_filter = (queue_filter(CLAIM_QUEUES), "status", "source", CurrencyFilter, ("submitted_at", admin.DateFieldListFilter))
    list_select_related = ("account", "bank_transaction")
    # Newest first by id (the primary key's index; ids follow submission, as submitted_at does):
    # ordering by submitted_at sorted every claim on disk for each page (0.1-0.14 s at 200k,
    # benchmarks/bench_admin.py).
    ordering = ("-id",)
    raw_id_fields = ("account", "bank_transaction", "initiated_by", "reviewed_by", "decided_by")
    search_fields = ("bank_reference",)  # routed by get_search_results
    search_help_text = "Claim id, account UID or id (digits), or the exact bank reference."
    fieldsets = (
        (None, {"fields": ("account", "status", "source", "bank_transaction")}),
        ("Transfer as claimed", {"fields": (
            "amount", "currency", "value_date", "payer_name", "bank_reference", "proof_link",
        )}),
        ("Decisions", {"fields": (
            "initiated_by", "submitted_at", "reviewed_by", "reviewed_at", "decided_by", "decided_at", "note",
        )}),
    )
    readonly_fields = (
        "account", "status", "source", "bank_transaction", "amount", "currency", "value_date", "payer_name",
        "bank_reference", "proof_link", "initiated_by", "submitted_at", "reviewed_by", "reviewed_at",
        "decided_by", "decided_at", "note",
    )

    # --- permissions ----------------------------------------------------------------------------

    def has_review_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "review_remittanceclaim")

    def has_approve_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "approve_remittanceclaim")

    def has_initiate_permission(self, request) -> bool:
        # add_remittanceclaim means "initiate a claim" through the service, never the add form.
        return has_model_perm(request, self.opts, "add_remittanceclaim")

    # --- changelist -----------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            # The accounts named by UID or id are looked up first (one indexed query): an OR
            # across the join to accounts made PostgreSQL hash-join both whole tables
            # (0.5 s at 200k claims, benchmarks/bench_admin.py).
            return queryset.filter(Q(account_id__in=account_ids_named_by(term)) | digits_pk(term)), False
        return queryset.filter(bank_reference=term), False

    amount_display = money_column("amount")

    @admin.display(description="account", ordering="account__uid")
    def account_display(self, obj: RemittanceClaim):
        return account_link(obj.account)

    @admin.display(description="transfer")
    def transfer(self, obj: RemittanceClaim):
        if obj.bank_transaction_id is None:
            return "waiting"
        return f"{obj.bank_transaction.bank_reference} ({obj.bank_transaction.get_status_display().lower()})"

    @admin.display(description="proof")
    def proof_link(self, obj: RemittanceClaim):
        if not obj.pk or not obj.proof:
            return EMPTY
        return format_html('<a href="{}">Download the proof</a>', self._url("proof", obj.pk))

    # --- urls (each step's URL: ClaimPagesMixin._url) --------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        own = [
            path("<int:claim_id>/review/", wrap(self.review_view), name="remittances_remittanceclaim_review"),
            path("<int:claim_id>/approve/", wrap(self.approve_view), name="remittances_remittanceclaim_approve"),
            path("<int:claim_id>/reject/", wrap(self.reject_view), name="remittances_remittanceclaim_reject"),
            path("<int:claim_id>/attach/", wrap(self.attach_view), name="remittances_remittanceclaim_attach"),
            path("<int:claim_id>/proof/", wrap(self.proof_view), name="remittances_remittanceclaim_proof"),
            path("initiate/<int:txn_id>/", wrap(self.initiate_view), name="remittances_remittanceclaim_initiate"),
        ]
        return own + super().get_urls()

    # --- change page ----------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        claim = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if claim is not None and self.has_view_permission(request, claim):
            extra.update(self._claim_context(request, claim))
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _claim_context(self, request, claim: RemittanceClaim) -> dict:
        steps = available_steps(claim, request.user)
        txn = (
            BankTransaction.objects.select_related("receiving_account").filter(pk=claim.bank_transaction_id).first()
            if claim.bank_transaction_id
            else None
        )
        staff = self.has_review_permission(request) or self.has_approve_permission(request)
        return {
            "claim": claim,
            "txn": txn,
            "step_urls": {step: self._url(step, claim.pk) for step, shown in steps.items() if shown},
            "blocked_steps": self.blocked_steps(claim, request.user),
            "four_eyes": decision_blocked(claim, request.user) if claim.status in RemittanceClaim.OPEN_STATUSES else None,
            # Who else the transfer might be from: the reviewer's check that the evidence fits.
            "suggestions": claim_suggestions(transaction=txn) if txn is not None and staff else [],
            "proof_url": self._url("proof", claim.pk) if claim.proof else None,
        }

    # --- step views (the page: ClaimPagesMixin._step_view) ----------------------------

    def review_view(self, request, claim_id: int):
        return self._step_view(
            request, claim_id, step="review", allowed=self.has_review_permission(request), form_class=ReviewForm,
            call=lambda claim, data: services.claim_review(
                claim_id=claim.pk, actor=request.user, note=data["note"], now=timezone.now()
            ),
            title="Review the claim", submit_label="Mark as reviewed",
            done="Claim #{claim.pk} reviewed; finance can approve it now.",
        )

    def approve_view(self, request, claim_id: int):
        return self._step_view(
            request, claim_id, step="approve", allowed=self.has_approve_permission(request), form_class=ApproveForm,
            call=lambda claim, data: services.claim_approve(claim_id=claim.pk, actor=request.user, now=timezone.now()),
            title="Approve the claim", submit_label="Confirm: approve and credit",
            done="Claim #{claim.pk} approved; the transfer is credited to the account.",
        )

    def reject_view(self, request, claim_id: int):
        return self._step_view(
            request, claim_id, step="reject",
            allowed=self.has_review_permission(request) or self.has_approve_permission(request),
            form_class=RejectForm,
            call=lambda claim, data: services.claim_reject(
                claim_id=claim.pk, actor=request.user, reason=data["reason"], now=timezone.now()
            ),
            title="Reject the claim", submit_label="Confirm: reject",
            done="Claim #{claim.pk} rejected; the transfer can be claimed again.",
        )

    def attach_view(self, request, claim_id: int):
        return self._step_view(
            request, claim_id, step="attach", allowed=self.has_review_permission(request), form_class=AttachForm,
            call=lambda claim, data: services.claim_attach(
                claim_id=claim.pk, bank_transaction_id=data["bank_transaction"], actor=request.user,
                now=timezone.now(),
            ),
            title="Attach the transfer", submit_label="Attach",
            done="Transfer attached to claim #{claim.pk}; it can be reviewed now.",
        )

    # --- initiate a claim from an unmatched transaction ----------------------------------------

    def initiate_view(self, request, txn_id: int):
        """CLM-1: the account manager claims an unmatched shared-account transfer for an account."""
        if not self.has_initiate_permission(request):
            raise PermissionDenied
        txn = get_object_or_404(BankTransaction.objects.select_related("receiving_account"), pk=txn_id)
        suggestions = claim_suggestions(transaction=txn) if txn.status == TxnStatus.UNMATCHED else []
        form = InitiateForm(request.POST or None, request.FILES or None, suggestions=suggestions)
        if request.method == "POST" and form.is_valid():
            account = form.cleaned_data["account_obj"]
            try:
                claim = services.claim_submit(
                    account_id=account.pk, amount=txn.amount, currency=txn.currency,
                    bank_transaction_id=txn.pk, proof=form.cleaned_data.get("proof"),
                    source=RemittanceClaim.Source.STAFF, initiated_by=request.user, now=timezone.now(),
                )
            except BillingError as error:
                self.message_user(request, refusal_text(f"Transaction #{txn.pk}", error), messages.ERROR)
            else:
                self.message_user(
                    request, f"Claim #{claim.pk} initiated for {account}; it needs a review, then finance approval.",
                    messages.SUCCESS,
                )
                return self._back(claim.pk)
        return self._page(request, "initiate.html", {
            "title": f"Initiate a claim for transaction #{txn.pk}", "txn": txn, "form": form,
            "suggestions": suggestions, "claimable": txn.status == TxnStatus.UNMATCHED,
            "transactions_url": self._transactions_url(),
        })

    def changelist_view(self, request, extra_context=None):
        extra = dict(extra_context or {})
        if self.has_initiate_permission(request):
            extra["transactions_url"] = self._transactions_url()
        return super().changelist_view(request, extra_context=extra)
