"""REM-3: the Payment Request Form of a dedicated remittance account, as PDF bytes.

Rendered from ``templates/remittances/payment_request_form.html`` by weasyprint. The form tells
the customer where to send money (beneficiary, bank, SWIFT/BIC, account number, currency) and
that this account pays for one cloud account only (REM-1). Only an active dedicated account has
a form: a shared account belongs to no cloud account, and a suspended one must not be paid into.
Fonts: DejaVu (Debian's fonts-dejavu-core), so the output is the same on every machine.
"""

from __future__ import annotations

from datetime import datetime

from django.template.loader import render_to_string
from django_countries import countries

from remittances import numbering
from remittances.models import RemittanceAccount
from remittances.services.accounts import RemittanceAccountStateError

TEMPLATE = "remittances/payment_request_form.html"


def payment_request_form_filename(remittance_account: RemittanceAccount) -> str:
    """``payment-request-form-<account uid>.pdf``: the customer's own id, no spaces."""
    return f"payment-request-form-{remittance_account.account.uid}.pdf"


def payment_request_form_context(*, remittance_account: RemittanceAccount, now: datetime) -> dict:
    if remittance_account.kind != RemittanceAccount.Kind.DEDICATED:
        raise RemittanceAccountStateError(
            f"{remittance_account.number} is a shared receiving account; a Payment Request Form is "
            "issued for dedicated accounts only.",
            rule="REM-3",
        )
    if remittance_account.status != RemittanceAccount.Status.ACTIVE:
        raise RemittanceAccountStateError(
            f"Remittance account {numbering.format_number(remittance_account.number)} is suspended; "
            "resume it before sending its Payment Request Form.",
            rule="REM-3",
        )
    account = remittance_account.account
    is_iban = numbering.looks_like_iban(remittance_account.number)
    return {
        "ra": remittance_account,
        "account": account,
        "number_label": "IBAN" if is_iban else "Account number",
        "number_display": numbering.format_number(remittance_account.number),
        "bank_country_name": countries.name(remittance_account.bank_country) or remittance_account.bank_country,
        "issued_on": remittance_account.issued_at.date(),
        "generated_at": now,
        "document_ref": f"PRF-{account.uid}-{remittance_account.pk}",
    }


def payment_request_form_pdf(*, remittance_account: RemittanceAccount, now: datetime) -> bytes:
    """REM-3: the form as PDF bytes (raises ``RemittanceAccountStateError`` for no-form accounts)."""
    # Imported here: weasyprint loads Pango through cffi at import, which nothing else needs.
    from weasyprint import HTML

    html = render_to_string(TEMPLATE, payment_request_form_context(remittance_account=remittance_account, now=now))
    return HTML(string=html).write_pdf()
