"""Issue 10: the lists' CSV/XLSX exports (billing_backoffice/admin_export.py).

What finance relies on: the file has the rows of the list as filtered, amounts as plain decimals
beside a currency, names instead of ids; the file is streamed in chunks (the number of queries does
not grow with the rows); CSV is the default; a payment method leaves masked (SEC-1); only those who
may view a list may export it.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing_backoffice.admin_export import csv_lines, CellPlan
from payments.admin.exports import BillResource, PaymentMethodResource
from payments.models import Bill, LedgerEntry
from tests.factories import AccountFactory, BillFactory, ChargeFactory, LedgerEntryFactory, UserFactory
from tests.factories.linking import CardMethodFactory, PayPalMethodFactory
from tests.helpers.admin import as_user, body_of

pytestmark = pytest.mark.django_db


def export(client, model: str, resource, *, fmt: str = "0", query: str = ""):
    """POST the export page of ``payments.<model>`` with every column ticked, as the page does."""
    prefix = resource.__name__.lower()
    fields = {f"{prefix}_{name}": "on" for name in resource().get_export_order()}
    url = reverse(f"admin:payments_{model}_export") + query
    return client.post(url, {"format": fmt, "resource": "0", **fields})


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body_of(response).decode("utf-8"))))


def test_bills_export_has_the_filtered_rows_with_plain_amounts_and_account_names(client, finance):
    acme = AccountFactory(name="Acme Ltd")
    open_bill = BillFactory(account=acme, total=Decimal("50000.00"), amount_paid=Decimal("1234.56"))
    BillFactory(account=acme, status=Bill.Status.PAID, total=Decimal("10.00"), amount_paid=Decimal("10.00"))
    response = export(as_user(client, finance), "bill", BillResource, query="?status__exact=open")
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="' in response["Content-Disposition"]
    [row] = csv_rows(response)  # the paid bill is filtered out, as on the list
    assert row["reference"] == open_bill.reference
    assert (row["account_uid"], row["account_name"]) == (acme.uid, "Acme Ltd")
    assert (row["total"], row["amount_paid"], row["outstanding"], row["currency"]) == (
        "50000.00", "1234.56", "48765.44", "USD")
    assert row["status"] == Bill.Status.OPEN.label  # words, not codes


def test_bills_export_as_xlsx_keeps_numbers_and_dates_as_cells_of_their_type(client, finance):
    bill = BillFactory(total=Decimal("99.95"))
    response = export(as_user(client, finance), "bill", BillResource, fmt="1")
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    sheet = openpyxl.load_workbook(io.BytesIO(body_of(response))).active
    header, row = [c.value for c in sheet[1]], [c.value for c in sheet[2]]
    cell = dict(zip(header, row))
    assert cell["reference"] == bill.reference and cell["total"] == pytest.approx(99.95)
    assert cell["due_date"] is not None and not isinstance(cell["due_date"], str)


def test_csv_is_the_export_pages_default_format(client, finance):
    page = as_user(client, finance).get(reverse("admin:payments_bill_export"))
    assert page.status_code == 200
    field = page.context["form"].fields["format"]
    assert field.initial == "0" and field.choices[0][1].lower() == "csv"
    assert all(value != "" for value, _ in field.choices)  # no empty choice to trip on


def test_sec_1_payment_methods_export_masked_never_a_token_fingerprint_or_cardholder(client, finance):
    card = CardMethodFactory(number="4111111111111111", cardholder_name="Ada Lovelace")
    paypal = PayPalMethodFactory()
    response = export(as_user(client, finance), "paymentmethod", PaymentMethodResource)
    text = body_of(response).decode("utf-8")
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(text))}
    assert rows[card.pk]["last_four"] == "1111" and rows[card.pk]["brand"] == "Visa"
    assert rows[paypal.pk]["paypal_email"] == paypal.paypal_email
    for secret in (card.gateway_token, card.fingerprint, "Ada Lovelace", "1 Main St", "411111", paypal.agreement_id):
        assert secret not in text
    assert set(PaymentMethodResource().get_export_order()).isdisjoint(
        {"gateway_token", "fingerprint", "cardholder_name", "billing_line1", "agreement_id"})


def test_charges_ledger_and_accounts_export_name_accounts_and_bills(client, finance):
    acme = AccountFactory(name="Acme Ltd")
    bill = BillFactory(account=acme)
    ChargeFactory(account=acme, bill=bill)
    LedgerEntryFactory(account=acme, amount=Decimal("25.00"), kind=LedgerEntry.Kind.CLAIM_CREDIT)
    from payments.admin.exports import AccountResource, ChargeResource, LedgerEntryResource

    logged_in = as_user(client, finance)
    [charge] = csv_rows(export(logged_in, "charge", ChargeResource))
    assert (charge["account_uid"], charge["bill"]) == (acme.uid, bill.reference)
    [entry] = csv_rows(export(logged_in, "ledgerentry", LedgerEntryResource))
    assert (entry["account_name"], entry["amount"]) == ("Acme Ltd", "25.00")
    accounts = {r["uid"]: r for r in csv_rows(export(logged_in, "account", AccountResource))}
    assert accounts[acme.uid]["name"] == "Acme Ltd"


def test_the_file_is_read_in_chunks_whatever_the_number_of_rows(settings):
    """One query per chunk of rows, never one per row (related names come by joins)."""
    resource = BillResource()
    plan = CellPlan(resource)

    def queries_for(rows: int) -> int:
        Bill.objects.all().delete()
        for _ in range(rows):
            BillFactory()
        with CaptureQueriesContext(connection) as captured:
            lines = list(csv_lines(plan, Bill.objects.order_by("-id"), size=10))
        assert len(lines) == 1 + (rows + 9) // 10  # the header, then one batch of lines per chunk
        return len(captured)

    assert queries_for(5) == 1
    assert queries_for(30) == 4  # three full chunks and the empty read that ends them


def test_exports_need_the_view_permission_of_the_list(client):
    outsider = UserFactory(username="no-perms", is_staff=True)
    for model in ("bill", "charge", "ledgerentry", "account", "paymentmethod"):
        assert as_user(client, outsider).get(reverse(f"admin:payments_{model}_export")).status_code == 403, model


@pytest.mark.parametrize("model", ["bill", "charge", "ledgerentry", "account", "paymentmethod"])
def test_each_list_has_an_export_button_that_carries_its_filters(client, finance, model):
    url = reverse(f"admin:payments_{model}_changelist")
    page = as_user(client, finance).get(url, {"o": "1"})
    assert page.status_code == 200
    assert reverse(f"admin:payments_{model}_export") + "?o=1" in page.content.decode()


def test_the_streamed_xlsx_file_opens_with_text_numbers_dates_and_no_control_characters():
    """billing_backoffice/xlsx_stream.py: what a spreadsheet reads back from the streamed file."""
    from datetime import date, datetime

    from billing_backoffice.xlsx_stream import xlsx_stream

    rows = [["<b>&amp; 'quoted'", Decimal("1234.56"), 7, date(2026, 12, 3), datetime(2026, 12, 3, 17, 50, 5),
             "bell\x07 gone", None, True]]
    data = b"".join(xlsx_stream(["text", "amount", "n", "day", "at", "ctl", "empty", "flag"], [rows, rows],
                                title="Bills: [2026]"))
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.active
    assert sheet.title == "Bills   2026 "  # the characters a sheet name cannot hold are replaced
    assert [c.value for c in sheet[1]] == ["text", "amount", "n", "day", "at", "ctl", "empty", "flag"]
    values = [c.value for c in sheet[2]]
    assert values[:3] == ["<b>&amp; 'quoted'", pytest.approx(1234.56), 7]
    assert values[3] == datetime(2026, 12, 3) and sheet.cell(2, 4).number_format == "yyyy-mm-dd"
    assert values[4] == datetime(2026, 12, 3, 17, 50, 5)
    assert values[5:] == ["bell gone", None, "yes"]
    assert sheet.max_row == 3  # the header and both chunks
