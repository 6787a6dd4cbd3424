"""REM-3: the Payment Request Form PDF, read back with pypdf, and its download from the admin."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from remittances import numbering
from remittances.models import RemittanceAccount
from remittances.pdf import payment_request_form_pdf
from remittances.services.accounts import (
    RemittanceAccountStateError,
    dedicated_account_issue,
    receiving_account_register,
    remittance_account_suspend,
)
from tests.helpers.admin import messages_of
from tests.helpers.remittance_accounts import SHARED_IBAN, credit_account

pytestmark = pytest.mark.django_db

INSTRUCTION = "This account may only be used to pay for cloud account {uid}. Do not use it to pay for any other account."


def pdf_text(pdf: bytes) -> tuple[str, PdfReader]:
    """The PDF's text with whitespace collapsed (lines wrap wherever the layout puts them)."""
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split()), reader


@pytest.fixture
def dedicated(am, now):
    account = credit_account(name="Acme Industries GmbH & Co. KG")
    return dedicated_account_issue(account_id=account.pk, actor=am, now=now)


def test_rem_3_form_shows_beneficiary_bank_bic_number_currency_account_and_instruction(dedicated, now):
    pdf = payment_request_form_pdf(remittance_account=dedicated, now=now)
    assert pdf.startswith(b"%PDF-")
    text, reader = pdf_text(pdf)
    account = dedicated.account
    for expected in (
        "Payment Request Form",
        dedicated.beneficiary_name,
        dedicated.bank_name,
        dedicated.bic,
        numbering.format_number(dedicated.number),  # the IBAN grouped in fours
        dedicated.currency,
        account.uid,
        account.name,
        "26 November 2026",  # the issue date
        INSTRUCTION.format(uid=account.uid),
    ):
        assert expected in text, expected
    assert len(reader.pages) == 1
    assert reader.pages[0].mediabox.width == pytest.approx(595.3, abs=1)  # A4 portrait
    assert account.uid in reader.metadata.title


def test_rem_3_number_outside_iban_countries_is_printed_as_issued(am, now, settings):
    settings.REMITTANCE_BANK = {**settings.REMITTANCE_BANK, "country": "SG", "bank_code": "7171", "bic": "EXBKSGSGXXX"}
    ra = dedicated_account_issue(account_id=credit_account().pk, actor=am, now=now)
    text, _ = pdf_text(payment_request_form_pdf(remittance_account=ra, now=now))
    assert f"Account number {ra.number}" in text and "IBAN" not in text
    assert "Singapore" in text


def test_rem_3_a_long_customer_name_still_fits_one_page(am, now):
    account = credit_account(name=("Very Long Enterprise Customer Name Holding International Partnership " * 3)[:200])
    ra = dedicated_account_issue(account_id=account.pk, actor=am, now=now)
    _, reader = pdf_text(payment_request_form_pdf(remittance_account=ra, now=now))
    assert len(reader.pages) == 1


def test_rem_3_customer_names_are_escaped_not_rendered_as_html(am, now):
    account = credit_account(name="<b>Evil</b> & Co")
    ra = dedicated_account_issue(account_id=account.pk, actor=am, now=now)
    text, _ = pdf_text(payment_request_form_pdf(remittance_account=ra, now=now))
    assert "<b>Evil</b> & Co" in text


def test_rem_3_no_form_for_a_shared_or_a_suspended_account(dedicated, am, now):
    shared = receiving_account_register(
        number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="GBP", now=now
    ).account
    with pytest.raises(RemittanceAccountStateError, match="dedicated accounts only"):
        payment_request_form_pdf(remittance_account=shared, now=now)
    suspended = remittance_account_suspend(remittance_account_id=dedicated.pk, actor=am, now=now)
    with pytest.raises(RemittanceAccountStateError, match="suspended"):
        payment_request_form_pdf(remittance_account=suspended, now=now)


# --- download from the admin ---------------------------------------------------------------------


def form_url(ra: RemittanceAccount) -> str:
    return reverse("admin:remittances_remittanceaccount_payment_request_form", args=[ra.pk])


@pytest.mark.parametrize("role", ["am", "fin"])
def test_rem_3_account_managers_and_finance_download_the_form(client, dedicated, role, request):
    client.force_login(request.getfixturevalue(role))
    response = client.get(form_url(dedicated))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="payment-request-form-{dedicated.account.uid}.pdf"'
    text, _ = pdf_text(response.content)
    assert numbering.format_number(dedicated.number) in text


def test_rem_3_download_link_on_the_list_and_the_change_page(client, dedicated, fin):
    client.force_login(fin)
    listing = client.get(reverse("admin:remittances_remittanceaccount_changelist")).content.decode()
    change = client.get(reverse("admin:remittances_remittanceaccount_change", args=[dedicated.pk])).content.decode()
    assert form_url(dedicated) in listing and form_url(dedicated) in change


def test_sec_3_staff_without_view_permission_cannot_download(client, dedicated, nobody):
    client.force_login(nobody)
    assert client.get(form_url(dedicated)).status_code == 403


def test_rem_3_download_of_a_suspended_account_explains_instead(client, dedicated, am, now):
    remittance_account_suspend(remittance_account_id=dedicated.pk, actor=am, now=now)
    client.force_login(am)
    response = client.get(form_url(dedicated))
    assert response.status_code == 302
    assert any("suspended" in m and "REM-3" in m for m in messages_of(response))


def test_rem_3_download_of_an_unknown_account_is_404(client, am):
    client.force_login(am)
    url = reverse("admin:remittances_remittanceaccount_payment_request_form", args=[999999])
    assert client.get(url).status_code == 404
