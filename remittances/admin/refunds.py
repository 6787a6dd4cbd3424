"""Refunds, transfers between accounts and outgoing payment files in the admin (RFD-1..3).

A thin layer: every record is read-only; each step is a custom view (``get_urls`` +
``admin_view``) with a small form and one service call, or an action that loops over the
selected ids. Permissions hide the buttons; the services check them again (SEC-3) and refuse
the requester's own decision (four eyes), reported with the rule ID.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_site import (
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    has_model_perm,
    money_cell,
    money_column,
    refusal_text,
    run_service_action,
)
from billing_backoffice.admin_confirm import confirmed_action
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from billing_backoffice.money import AmountFormField, CurrencyFormField
from payments.admin.account_field import AccountChoiceField
from payments.admin.display import account_link
from remittances.admin.funds_out_confirm import refund_previews, transfer_previews
from remittances.models import FundsTransfer, PaymentFile, RefundRequest
from remittances.services import payment_files, refunds, transfers

TEMPLATE = "admin/remittances/refunds/form.html"


def _entry(entry) -> str:
    if entry is None:
        return "—"
    return format_html("{} <code>{}</code>", money_cell(entry.amount, entry.currency), entry.reference)


class StepAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A form page that calls one service; a refusal is shown with its rule, nothing changes."""

    change_list_template = "admin/remittances/refunds/change_list.html"

    def _form_page(self, request, *, allowed: bool, form_class, call, title: str, done: str, obj=None):
        if not allowed:
            raise PermissionDenied
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = call(form.cleaned_data)
            except BillingError as error:
                self.message_user(request, refusal_text(title, error), messages.ERROR)
            else:
                self.message_user(request, done.format(obj=result), messages.SUCCESS)
                return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title, "form": form, "obj": obj}
        return TemplateResponse(request, TEMPLATE, context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "tools": self.tools(request)}
        return super().changelist_view(request, extra_context)

    def tools(self, request) -> list[tuple[str, str]]:
        return []


# --- refunds --------------------------------------------------------------------------------


class RefundForm(ForgetsCardNumbers, forms.Form):
    account = AccountChoiceField(RefundRequest._meta.get_field("account"))
    bank_transaction = forms.IntegerField(min_value=1, required=False, label="Bank transaction id",
                                          help_text="The credited transaction the money came from, where there is one.")
    debtor_account = forms.IntegerField(min_value=1, required=False, label="Paid from (remittance account id)",
                                        help_text="Only when no bank transaction is named.")
    amount = AmountFormField()
    currency = CurrencyFormField()
    payer_name = forms.CharField(max_length=140, validators=[card_number_free])
    payer_iban = forms.CharField(max_length=42, label="Payer IBAN")
    payer_bic = forms.CharField(max_length=11, label="Payer BIC")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), validators=[card_number_free])


class DecisionForm(ForgetsCardNumbers, forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, validators=[card_number_free],
                           help_text="Required for a rejection (the reason).")


class ReturnForm(ForgetsCardNumbers, forms.Form):
    reason = forms.CharField(max_length=300, validators=[card_number_free],
                             help_text="The bank's reason code and text, e.g. AC04 account closed.")


@admin.register(RefundRequest)
class RefundRequestAdmin(StepAdmin):
    list_display = ("id", "kind", "account_cell", "amount_display", "payer_name", "status", "requested_by",
                    "decided_by", "submitted_at")
    list_filter = ("status", "kind", "currency")
    list_select_related = ("account", "requested_by", "decided_by")
    amount_display = money_column("amount")
    account_cell = admin.display(description="account", ordering="account__uid")(lambda self, obj: account_link(obj.account))
    search_fields = ("=id", "=payer_iban")
    raw_id_fields = ("account", "bank_transaction", "debtor_account", "ledger_entry", "payment_file", "return_entry")
    readonly_fields = ("debit", "credited_back", "steps")
    actions = ["approve_selected"]

    @admin.display(description="next step")
    def steps(self, obj):
        if obj.status == RefundRequest.Status.SUBMITTED:
            return format_html('<a href="{}">Approve or reject</a>', reverse("admin:remittances_refundrequest_decide", args=[obj.pk]))
        if obj.status in (RefundRequest.Status.IN_FILE, RefundRequest.Status.SENT):
            return format_html('<a href="{}">Record the bank\'s rejection</a>',
                               reverse("admin:remittances_refundrequest_returned", args=[obj.pk]))
        return "—"

    @admin.display(description="ledger debit")
    def debit(self, obj):
        return _entry(obj.ledger_entry)

    @admin.display(description="credited back")
    def credited_back(self, obj):
        return _entry(obj.return_entry)

    def has_request_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "add_refundrequest")

    def has_approve_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "approve_refundrequest")

    def has_return_permission(self, request) -> bool:
        return request.user.has_perm("remittances.send_paymentfile")

    def tools(self, request):
        return [(reverse("admin:remittances_refundrequest_record"), "Record a refund")] if self.has_request_permission(request) else []

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("record/", view(self.record_view), name="remittances_refundrequest_record"),
            path("<int:refund_id>/decide/", view(self.decide_view), name="remittances_refundrequest_decide"),
            path("<int:refund_id>/returned/", view(self.return_view), name="remittances_refundrequest_returned"),
            *super().get_urls(),
        ]

    def record_view(self, request):
        return self._form_page(
            request, allowed=self.has_request_permission(request), form_class=RefundForm, title="Record a refund",
            done="{obj} recorded; another finance staff member approves it.",
            call=lambda d: refunds.refund_request(
                account_id=d["account"].pk, bank_transaction_id=d["bank_transaction"], debtor_account_id=d["debtor_account"],
                amount=d["amount"], currency=d["currency"], payer_name=d["payer_name"], payer_iban=d["payer_iban"],
                payer_bic=d["payer_bic"], reason=d["reason"], actor=request.user, now=timezone.now(),
            ),
        )

    def decide_view(self, request, refund_id: int):
        refund = get_object_or_404(RefundRequest, pk=refund_id)

        def call(d):
            if d["decision"] == "approve":
                return refunds.refund_approve(refund_id=refund.pk, actor=request.user, note=d["note"], now=timezone.now())
            return refunds.refund_reject(refund_id=refund.pk, actor=request.user, reason=d["note"], now=timezone.now())

        return self._form_page(request, allowed=self.has_approve_permission(request), form_class=DecisionForm,
                               title=f"Decide refund #{refund.pk}", done="{obj} decided.", call=call, obj=refund)

    def return_view(self, request, refund_id: int):
        refund = get_object_or_404(RefundRequest, pk=refund_id)
        return self._form_page(
            request, allowed=self.has_return_permission(request), form_class=ReturnForm,
            title=f"Refund #{refund.pk} rejected by the bank", obj=refund, done="{obj}: the money is back on the balance.",
            call=lambda d: refunds.refund_return(refund_id=refund.pk, actor=request.user, reason=d["reason"],
                                                 now=timezone.now()),
        )

    @admin.action(description="Approve the selected refunds (four eyes)", permissions=["approve"])
    def approve_selected(self, request, queryset):
        """Behind a confirmation page (issue 10): what leaves the balance, or the RFD refusal."""
        return confirmed_action(
            self, request, queryset.select_related("account"), action="approve_selected",
            title="Approve refunds", intro="Approving debits the account's balance once (RFD-1).",
            preview=lambda selected: refund_previews(selected, request.user),
            perform=lambda selected, reason: run_service_action(
                self, request, selected, done_message="{count} refund(s) approved.", reason=reason,
                log_message="Refund approved (RFD-1).",
                call=lambda r: refunds.refund_approve(refund_id=r.pk, actor=request.user, now=timezone.now())),
        )


# --- transfers between accounts -------------------------------------------------------------


class TransferForm(ForgetsCardNumbers, forms.Form):
    from_account = AccountChoiceField(FundsTransfer._meta.get_field("from_account"), label="From account (credited by mistake)")
    to_account = AccountChoiceField(FundsTransfer._meta.get_field("to_account"), label="To account (the right one)")
    bank_transaction = forms.IntegerField(min_value=1, required=False, label="Bank transaction id")
    amount = AmountFormField()
    currency = CurrencyFormField()
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), validators=[card_number_free])


@admin.register(FundsTransfer)
class FundsTransferAdmin(StepAdmin):
    list_display = ("id", "from_cell", "to_cell", "amount_display", "status", "requested_by",
                    "decided_by", "submitted_at")
    list_filter = ("status", "currency")
    list_select_related = ("from_account", "to_account", "requested_by", "decided_by")
    amount_display = money_column("amount")
    from_cell = admin.display(description="from account")(lambda self, obj: account_link(obj.from_account))
    to_cell = admin.display(description="to account")(lambda self, obj: account_link(obj.to_account))
    search_fields = ("=id",)
    raw_id_fields = ("from_account", "to_account", "bank_transaction", "debit_entry", "credit_entry")
    readonly_fields = ("debit_side", "credit_side", "steps")
    actions = ["approve_selected"]

    @admin.display(description="next step")
    def steps(self, obj):
        if obj.status == FundsTransfer.Status.SUBMITTED:
            return format_html('<a href="{}">Approve or reject</a>', reverse("admin:remittances_fundstransfer_decide", args=[obj.pk]))
        return "—"

    @admin.display(description="debit (from)")
    def debit_side(self, obj):
        return _entry(obj.debit_entry)

    @admin.display(description="credit (to)")
    def credit_side(self, obj):
        return _entry(obj.credit_entry)

    def has_initiate_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "add_fundstransfer")

    def has_approve_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "approve_fundstransfer")

    def tools(self, request):
        allowed = self.has_initiate_permission(request)
        return [(reverse("admin:remittances_fundstransfer_initiate"), "Initiate a transfer")] if allowed else []

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("initiate/", view(self.initiate_view), name="remittances_fundstransfer_initiate"),
            path("<int:transfer_id>/decide/", view(self.decide_view), name="remittances_fundstransfer_decide"),
            *super().get_urls(),
        ]

    def initiate_view(self, request):
        return self._form_page(
            request, allowed=self.has_initiate_permission(request), form_class=TransferForm,
            title="Initiate a transfer between accounts", done="{obj} initiated; finance approves it.",
            call=lambda d: transfers.transfer_request(
                from_account_id=d["from_account"].pk, to_account_id=d["to_account"].pk,
                bank_transaction_id=d["bank_transaction"], amount=d["amount"], currency=d["currency"],
                reason=d["reason"], actor=request.user, now=timezone.now(),
            ),
        )

    def decide_view(self, request, transfer_id: int):
        transfer = get_object_or_404(FundsTransfer, pk=transfer_id)

        def call(d):
            if d["decision"] == "approve":
                return transfers.transfer_approve(transfer_id=transfer.pk, actor=request.user, note=d["note"],
                                                  now=timezone.now())
            return transfers.transfer_reject(transfer_id=transfer.pk, actor=request.user, reason=d["note"],
                                             now=timezone.now())

        return self._form_page(request, allowed=self.has_approve_permission(request), form_class=DecisionForm,
                               title=f"Decide transfer #{transfer.pk}", done="{obj} decided.", call=call, obj=transfer)

    @admin.action(description="Approve the selected transfers (four eyes)", permissions=["approve"])
    def approve_selected(self, request, queryset):
        """Behind a confirmation page (issue 10): both balances before and after, or the refusal."""
        return confirmed_action(
            self, request, queryset.select_related("from_account", "to_account"), action="approve_selected",
            title="Approve transfers between accounts",
            intro="Approving debits the first account and credits the second, once, together (RFD-2).",
            preview=lambda selected: transfer_previews(selected, request.user),
            perform=lambda selected, reason: run_service_action(
                self, request, selected, done_message="{count} transfer(s) approved.", reason=reason,
                log_message="Transfer approved (RFD-2).",
                call=lambda t: transfers.transfer_approve(transfer_id=t.pk, actor=request.user, now=timezone.now())),
        )


# --- outgoing payment files -----------------------------------------------------------------


class GenerateForm(forms.Form):
    confirm = forms.BooleanField(label="Put every approved refund into a pain.001 file now")


@admin.register(PaymentFile)
class PaymentFileAdmin(StepAdmin):
    list_display = ("message_id", "debtor_account", "payment_count", "total_display", "status", "created_at",
                    "download")
    total_display = money_column("total")
    list_filter = ("status", "currency")
    list_select_related = ("debtor_account",)
    search_fields = ("=message_id",)
    exclude = ("content",)  # downloaded, not shown inline
    raw_id_fields = ("debtor_account",)
    actions = ["mark_sent"]

    def has_generate_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "generate_paymentfile")

    def has_send_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "send_paymentfile")

    @admin.display(description="file")
    def download(self, obj):
        return format_html('<a href="{}">pain.001 XML</a>', reverse("admin:remittances_paymentfile_download", args=[obj.pk]))

    def tools(self, request):
        allowed = self.has_generate_permission(request)
        return [(reverse("admin:remittances_paymentfile_generate"), "Generate payment files")] if allowed else []

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("generate/", view(self.generate_view), name="remittances_paymentfile_generate"),
            path("<int:file_id>/download/", view(self.download_view), name="remittances_paymentfile_download"),
            *super().get_urls(),
        ]

    def generate_view(self, request):
        return self._form_page(
            request, allowed=self.has_generate_permission(request), form_class=GenerateForm,
            title="Generate payment files", done="{obj} payment file(s) generated.",
            call=lambda d: len(payment_files.payment_files_generate(actor=request.user, now=timezone.now())),
        )

    def download_view(self, request, file_id: int):
        if not self.has_send_permission(request):
            raise PermissionDenied
        payment_file = get_object_or_404(PaymentFile, pk=file_id)
        response = HttpResponse(payment_file.content, content_type="application/xml")
        response["Content-Disposition"] = f'attachment; filename="{payment_file.message_id}.xml"'
        return response

    @admin.action(description="Mark the selected files sent to the bank", permissions=["send"])
    def mark_sent(self, request, queryset):
        run_service_action(self, request, queryset, done_message="{count} file(s) marked sent.",
                           call=lambda f: payment_files.payment_file_mark_sent(payment_file_id=f.pk, actor=request.user,
                                                                               now=timezone.now()))
