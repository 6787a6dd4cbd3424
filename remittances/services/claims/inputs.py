"""What a claim says, checked before anything is kept: amount and currency (I6), value date
(CLM-1) and the proof file. Pure checks: no query, no write."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.core.files.uploadedfile import UploadedFile

from billing_backoffice import money as money_checks
from payments.services.ledger import InvalidAmount
from remittances.services.claims.errors import ClaimAmountNotInCurrency, ClaimInvalid, ProofRejected, ValueDateImplausible

# Evidence the customer or the manager attaches: small scans or PDFs only.
PROOF_MAX_BYTES = 10 * 1024 * 1024
PROOF_TYPES = {  # content type -> (file extension, leading bytes of such a file)
    "application/pdf": (".pdf", (b"%PDF-",)),
    "image/png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": (".jpg", (b"\xff\xd8\xff",)),
}

# CLM-1: a transfer's value date is plausible: not before 2000, at most a few days ahead of the
# clock (a bank may give a value date one or two business days out, never more).
VALUE_DATE_EARLIEST = date(2000, 1, 1)
VALUE_DATE_DAYS_AHEAD = 5


def claim_amount_check(amount, currency: str) -> object:
    """I6: > 0, at most ``money.MAX_AMOUNT``, no more decimals than the currency has (JPY: none)."""
    try:
        money_checks.amount_validate(amount)
    except InvalidAmount as error:
        raise ClaimInvalid(error.detail, rule="I6", code=error.code) from None
    try:
        return money_checks.amount_validate(amount, currency)
    except InvalidAmount as error:
        raise ClaimAmountNotInCurrency(error.detail, rule="I6") from None


def claim_currency_check(currency: str) -> str:
    """I6: an accepted ISO 4217 fiat code (``money.CURRENCIES``): no ``ZZZ``, no ``XAU``."""
    try:
        return money_checks.currency_validate(currency)
    except money_checks.InvalidCurrency as error:
        raise ClaimInvalid(error.detail, rule="I6", code=error.code) from None


def claim_value_date_check(value_date: date | None, *, now: datetime) -> date | None:
    if value_date is None:
        return None
    latest = now.date() + timedelta(days=VALUE_DATE_DAYS_AHEAD)
    if not VALUE_DATE_EARLIEST <= value_date <= latest:
        raise ValueDateImplausible(
            f"A transfer's value date is between {VALUE_DATE_EARLIEST} and {VALUE_DATE_DAYS_AHEAD} days "
            f"from today ({latest}), not {value_date}."
        )
    return value_date


def validate_proof(proof: UploadedFile) -> str:
    """The proof's file extension when it is a PDF/PNG/JPEG under the size limit, else refuse.

    The size is checked before anything is read; the declared content type must agree with the
    file's first bytes, so a renamed executable or HTML page is refused.
    """
    if proof.size is None or proof.size > PROOF_MAX_BYTES:
        raise ProofRejected(f"The proof is larger than {PROOF_MAX_BYTES // (1024 * 1024)} MB.")
    if proof.size == 0:
        raise ProofRejected("The proof file is empty.")
    declared = (getattr(proof, "content_type", "") or "").split(";")[0].strip().lower()
    if declared not in PROOF_TYPES:
        raise ProofRejected("The proof must be a PDF, PNG or JPEG file.")
    extension, signatures = PROOF_TYPES[declared]
    proof.seek(0)
    head = proof.read(16)
    proof.seek(0)
    if not head.startswith(signatures):
        raise ProofRejected(f"The proof's content is not a {declared} file.")
    return extension
