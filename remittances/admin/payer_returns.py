"""The "Return to the payer" page of a bank transaction that cannot be credited (its currency is
not the receiving account's): finance records the return of the whole transfer, prefilled from
the statement line; another finance member approves it in the refund list (RFD-1, four eyes) and
it leaves in the next pain.001 file (``remittances.services.payer_returns``).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from billing_backoffice.admin_site import refusal_text
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from remittances.models import BankTransaction, RefundRequest
from remittances.services.payer_returns import payer_return_request

TEMPLATE = "admin/remittances/refunds/form.html"
PERMISSION = "remittances.add_refundrequest"


class PayerReturnForm(ForgetsCardNumbers, forms.Form):
    payer_name = forms.CharField(max_length=140, validators=[card_number_free])
    payer_iban = forms.CharField(max_length=42, label="Payer IBAN",
                                 help_text="From the statement line where it names one; check it.")
    payer_bic = forms.CharField(max_length=11, label="Payer BIC")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), validators=[card_number_free],
                             initial="Received in a currency the receiving account does not hold.")


def is_currency_mismatch(txn: BankTransaction) -> bool:
    return (txn.status == BankTransaction.Status.REVIEW and txn.entry_kind == BankTransaction.EntryKind.CREDIT
            and txn.currency != txn.receiving_account.currency)


def live_payer_return(txn: BankTransaction) -> RefundRequest | None:
    return RefundRequest.objects.filter(bank_transaction=txn, kind=RefundRequest.Kind.PAYER_RETURN).exclude(
        status__in=(RefundRequest.Status.REJECTED, RefundRequest.Status.RETURNED)).first()


class PayerReturnPagesMixin:
    """Adds ``<id>/return-to-payer/`` to the bank transactions' admin."""

    def get_urls(self):
        page = path("<int:txn_id>/return-to-payer/", self.admin_site.admin_view(self.payer_return_view),
                    name="remittances_banktransaction_return_to_payer")
        return [page, *super().get_urls()]

    def payer_return_view(self, request, txn_id: int):
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        txn = get_object_or_404(BankTransaction.objects.select_related("receiving_account"), pk=txn_id)
        initial = {"payer_name": txn.payer_name, "payer_iban": txn.payer_account}
        form = PayerReturnForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                returned = payer_return_request(bank_transaction_id=txn.pk, actor=request.user, now=timezone.now(),
                                                **form.cleaned_data)
            except BillingError as error:
                self.message_user(request, refusal_text(f"Bank transaction #{txn.pk}", error), messages.ERROR)
            else:
                self.log_change(request, txn, f"{returned} recorded. Reason: {returned.reason}")
                self.message_user(request, f"{returned} recorded; another finance staff member approves it in "
                                  "the refund list, then it goes into the next payment file.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:remittances_banktransaction_change", args=[txn.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form, "obj": txn,
                   "title": f"Return bank transaction #{txn.pk} to the payer"}
        return TemplateResponse(request, TEMPLATE, context)
