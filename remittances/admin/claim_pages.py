"""The claim admin's page machinery (CLM-1..4), mixed into ``RemittanceClaimAdmin``
(``claims.py``, which defines the steps, their forms and permissions): the URLs of the steps,
one step page (permission or 403, a form, one service call, a refusal shown with its rule), and
the permission-checked proof download.
"""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from billing_backoffice.admin_site import log_done, refusal_text
from billing_backoffice.money import money_text
from billing_backoffice.errors import BillingError
from payments.services.ledger import account_balance
from remittances.claim_steps import DECISIONS, decision_blocked, step_open, step_permissions
from remittances.models import BankTransaction, RemittanceClaim
from remittances.selectors import attach_candidates

TEMPLATES = "admin/remittances/claims"
TxnStatus = BankTransaction.Status


class ClaimPagesMixin:
    """Needs a ``ModelAdmin`` (``admin_site``, ``opts``, ``message_user``, ``has_view_permission``)."""

    def _url(self, step: str, *args) -> str:
        return reverse(f"admin:remittances_remittanceclaim_{step}", args=args, current_app=self.admin_site.name)

    def _page(self, request, template: str, context: dict):
        base = {**self.admin_site.each_context(request), "opts": self.opts, "app_label": self.opts.app_label}
        return TemplateResponse(request, f"{TEMPLATES}/{template}", {**base, **context})

    def _back(self, claim_id: int):
        return HttpResponseRedirect(reverse("admin:remittances_remittanceclaim_change", args=[claim_id]))

    def _get_claim(self, claim_id: int) -> RemittanceClaim:
        return get_object_or_404(
            RemittanceClaim.objects.select_related("account", "bank_transaction", "initiated_by", "reviewed_by"),
            pk=claim_id,
        )

    def _step_view(self, request, claim_id: int, *, step: str, allowed: bool, form_class, call, title: str,
                   submit_label: str, done: str):
        """One step: permission (403), a form, one service call; refusals come back with the rule."""
        if not allowed:
            raise PermissionDenied
        claim = self._get_claim(claim_id)
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                call(claim, form.cleaned_data)
            except BillingError as error:
                self.message_user(request, refusal_text(f"Claim #{claim.pk}", error), messages.ERROR)
            else:
                self._report_step(request, claim, done, form.cleaned_data)
            return self._back(claim.pk)
        blocked = decision_blocked(claim, request.user) if step in ("approve", "reject") else None
        context = {
            "title": title, "claim": claim, "txn": claim.bank_transaction, "form": form,
            "submit_label": submit_label, "blocked": blocked, "step": step,
        }
        if step == "attach":
            context["candidates"] = attach_candidates(claim=claim)
        if step == "approve" and not blocked:
            context["effects"] = approval_effects(claim)
        return self._page(request, "step.html", context)

    def _report_step(self, request, claim: RemittanceClaim, done: str, data: dict) -> None:
        """The step's message and LogEntry; a replay the service accepted unchanged (a double
        submit of an approval) is said so and logged nothing twice."""
        after = RemittanceClaim.objects.filter(pk=claim.pk).values_list("status", "bank_transaction_id").first()
        if after == (claim.status, claim.bank_transaction_id):
            self.message_user(request, f"Claim #{claim.pk} is already {claim.get_status_display().lower()}; "
                              "nothing changed.", messages.WARNING)
            return
        text = done.format(claim=claim)
        log_done(self, request, claim, text, data.get("reason") or data.get("note") or "")
        self.message_user(request, text, messages.SUCCESS)

    def blocked_steps(self, claim: RemittanceClaim, user) -> dict[str, str]:
        """CLM-3: the decision buttons ``user`` would have but may not press, with the reason (shown
        disabled on the claim's page instead of hidden)."""
        reason = decision_blocked(claim, user)
        if not reason:
            return {}
        return {
            step: reason for step in DECISIONS
            if step_open(step, claim) and any(user.has_perm(p) for p in step_permissions(step, claim))
        }

    def proof_view(self, request, claim_id: int):
        claim = get_object_or_404(RemittanceClaim, pk=claim_id)
        if not self.has_view_permission(request, claim):
            raise PermissionDenied
        if not claim.proof:
            raise Http404("This claim has no proof file.")
        content_type = mimetypes.guess_type(claim.proof.name)[0] or "application/octet-stream"
        extension = mimetypes.guess_extension(content_type) or ""
        # An attachment, never rendered inside the admin's origin.
        return FileResponse(
            claim.proof.open("rb"), as_attachment=True, filename=f"claim-{claim.pk}-proof{extension}",
            content_type=content_type,
        )

    def _transactions_url(self) -> str | None:
        # The unmatched-transactions queue lives in the statements admin, when it is registered.
        try:
            return reverse("admin:remittances_banktransaction_changelist") + f"?status__exact={TxnStatus.UNMATCHED}"
        except NoReverseMatch:
            return None


def approval_effects(claim: RemittanceClaim) -> list[tuple[str, str]]:
    """What approving does (CLM-1, CLM-2): the transfer's amount credited once to the account, and
    its balance after (before any settlement of open bills, SET-2). Read-only."""
    txn = claim.bank_transaction
    amount, currency = (txn.amount, txn.currency) if txn is not None else (claim.amount, claim.currency)
    balance = account_balance(account_id=claim.account_id, currency=currency)
    return [
        ("Credited to", f"{claim.account.uid} {claim.account.name}"),
        ("Amount credited", money_text(amount, currency)),
        ("Balance now", money_text(balance, currency)),
        ("Balance after", money_text(balance + amount, currency)),
    ]
