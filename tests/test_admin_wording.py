"""Issue 10, "screens that speak plainly": every changelist of the back office shows amounts with
thousands separators and their currency, codes in words, and UIDs and names instead of ids.

Each changelist of the apps' admins is rendered as a superuser over a world whose rows carry a
50,000 USD amount, the ``three_ds_not_completed`` reason and a decision by a named staff member;
only the result table is read (filter links carry codes in their URLs, as they must).
"""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse
from django_countries.fields import CountryField

from billing_backoffice.money import money_text
from payments.models import Bill, Charge, LinkAttempt, PaymentMethod
from payments.reasons import FAILURE_REASONS, reason_label
from remittances.models import BankTransaction, CreditLimitRequest
from remittances.services import credit as credit_services
from tests.helpers.roles import MANAGERS, role_group
from tests.factories import (
    AccountFactory,
    BankReversalFactory,
    BankTransactionFactory,
    BillFactory,
    CardMethodFactory,
    ChallengeFactory,
    ChargeFactory,
    CreditHoldFactory,
    FundsTransferFactory,
    HoldFactory,
    LedgerEntryFactory,
    LinkAttemptFactory,
    PaymentFileFactory,
    ReconciliationDayFactory,
    ReconciliationExceptionFactory,
    RefundRequestFactory,
    ReminderFactory,
    ReminderPauseFactory,
    RemittanceClaimFactory,
    UsageRecordFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

BIG = Decimal("50000.00")
SHOWN = "50,000.00 USD"
APPS = ("payments", "remittances", "billing_backoffice")
CHANGELISTS = sorted(
    (model for model in admin.site._registry if model._meta.app_label in APPS), key=lambda m: m._meta.label
)
# The changelists whose world rows carry the 50,000 USD amount.
WITH_BIG_AMOUNT = {
    "payments.Bill", "payments.Charge", "payments.LedgerEntry", "payments.UsageRecord",
    "remittances.BankTransaction", "remittances.CreditLimitRequest", "remittances.RemittanceClaim",
    "remittances.RefundRequest", "remittances.FundsTransfer", "remittances.PaymentFile",
    "remittances.BankReversal", "remittances.ReconciliationException", "remittances.ReconciliationDay",
}
SNAKE_CODES = {code for code in FAILURE_REASONS if "_" in code}


@pytest.fixture
def world(now):
    account = AccountFactory(name="Plain Words Ltd")
    card = CardMethodFactory(account=account, is_default=True)
    bill = BillFactory(account=account, total=BIG, amount_before_tax=BIG, issued_at=now)
    ChargeFactory(
        account=account, bill=bill, payment_method=card, amount=BIG, created_at=now, status=Charge.Status.FAILED,
        failure_reason="three_ds_not_completed", failure_rule="PAY-1", kind=Charge.Kind.MONTH_END,
    )
    LinkAttemptFactory(account=account, reason=LinkAttempt.Reason.THREE_DS_NOT_COMPLETED)
    HoldFactory(payment_method=card)
    ChallengeFactory(payment_method__account=account)
    UsageRecordFactory(account=account, amount=BIG, reported_at=now, period=f"{now:%Y-%m}")
    LedgerEntryFactory(account=account, amount=BIG, created_at=now)
    reminder = ReminderFactory(bill=bill, sent_at=now)
    CreditHoldFactory(account=account, reminder=reminder, started_at=now)
    ReminderPauseFactory(account=account, started_at=now)
    txn = BankTransactionFactory(amount=BIG, account=account, status=BankTransaction.Status.MATCHED)
    RemittanceClaimFactory(account=account, amount=BIG, bank_transaction=txn)
    RefundRequestFactory(account=account, amount=BIG, submitted_at=now)
    FundsTransferFactory(from_account=account, amount=BIG, submitted_at=now)
    PaymentFileFactory(total=BIG, created_at=now)
    BankReversalFactory(amount=BIG, account=account, reversal=BankTransactionFactory(amount=BIG))
    ReconciliationExceptionFactory(amount=BIG, day=ReconciliationDayFactory(booked_total=BIG))
    decider = UserFactory(username="maria.decider", first_name="Maria", last_name="Decider")
    decider.groups.add(role_group(MANAGERS))
    application = credit_services.credit_request_submit(
        account_id=account.pk, requested_limit=BIG, currency="USD", justification="Seasonal peak",
        source=CreditLimitRequest.Source.CONSOLE, now=now,
    )
    credit_services.credit_request_approve(request_id=application.pk, actor=decider, note="", now=now)
    return {"account": account, "decider": decider, "application": application}


def result_cells(response) -> list[str]:
    """The text of each cell of the changelist's result table (tags stripped, entities decoded)."""
    page = response.content.decode()
    table = re.search(r'<table id="result_list">(.*?)</table>', page, re.S)
    assert table, "the changelist shows no result table (no rows?)"
    body = re.sub(r"<thead>.*?</thead>", "", table.group(1), flags=re.S)  # the column titles
    cells = re.findall(r"<t[dh]([^>]*)>(.*?)</t[dh]>", body, re.S)
    return [
        html.unescape(re.sub(r"<[^>]+>", " ", cell)).strip()
        for attrs, cell in cells
        if "field-country_code" not in attrs  # the ISO 3166 code, shown on purpose (US, DE...)
    ]


def raw_codes_shown(model, cells: list[str]) -> set[str]:
    """Stored choice codes (and failure-reason codes) shown as themselves where a label belongs."""
    codes = set(SNAKE_CODES)
    for field in model._meta.concrete_fields:
        if isinstance(field, CountryField):  # ISO 3166 codes are shown on purpose (US, DE...)
            continue
        # Integer choices (reminder levels) are left out: a bare number is as often a count.
        codes |= {str(code) for code, label in field.flatchoices if isinstance(code, str) and code != str(label)}
    text = " ".join(cells)
    raw = {cell for cell in cells if cell in codes}
    return raw | {code for code in SNAKE_CODES if re.search(rf"\b{code}\b", text)}


@pytest.mark.parametrize("model", CHANGELISTS, ids=lambda m: m._meta.label)
def test_changelists_speak_in_words_amounts_and_uids(client, superuser, world, model):
    """Issue 10: no raw code, no unformatted amount, no "#<id>" reference, no account-id column."""
    client.force_login(superuser)
    response = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    assert response.status_code == 200
    if 'id="result_list"' not in response.content.decode():
        pytest.skip(f"{model._meta.label}: no row in the world")
    cells = result_cells(response)
    assert raw_codes_shown(model, cells) == set()
    assert [c for c in cells if re.search(r"#\d+", c)] == []
    # An amount is never bare: 1000 or more without separators, or with no currency after it.
    assert [c for c in cells if re.fullmatch(r"[+-]?\d{4,}\.\d{2}", c)] == []
    headers = re.findall(r'class="column-(\w+)', response.content.decode())
    assert [h for h in headers if h.endswith("account_id")] == []
    if model._meta.label in WITH_BIG_AMOUNT:
        assert any(SHOWN in c for c in cells), f"{model._meta.label}: no '{SHOWN}' in {cells}"


def test_charge_failure_reason_is_shown_in_words_with_its_rule(client, superuser, world):
    """PAY-5: the charges list says "3-D Secure not completed (PAY-1)", never the stored code."""
    client.force_login(superuser)
    cells = result_cells(client.get(reverse("admin:payments_charge_changelist")))
    assert "3-D Secure not completed (PAY-1)" in cells
    assert not any("three_ds_not_completed" in c for c in cells)


def test_charge_failure_reason_filter_offers_words(client, superuser, world):
    client.force_login(superuser)
    page = client.get(reverse("admin:payments_charge_changelist")).content.decode()
    assert ">3-D Secure not completed</a>" in page


def test_credit_application_names_its_account_and_decider_not_ids(client, superuser, world):
    """CRED-1: "Credit limit 50,000.00 USD for Plain Words Ltd (<UID>)", decided by the staff user by name."""
    application, account = world["application"], world["account"]
    application.refresh_from_db()
    text = str(application)
    assert text.startswith(f"Credit limit {SHOWN} for Plain Words Ltd ({account.uid})")
    assert str(account.pk) not in text.replace(account.uid, "")
    client.force_login(superuser)
    cells = result_cells(client.get(reverse("admin:remittances_creditlimitrequest_changelist")))
    assert "maria.decider" in cells
    assert any(account.uid in c and "Plain Words Ltd" in c for c in cells)


def test_model_names_carry_formatted_amounts_and_status_labels(world):
    bill = Bill.objects.get(account=world["account"])
    assert SHOWN in str(bill) and bill.get_status_display() in str(bill)
    charge = Charge.objects.get(account=world["account"])
    assert str(charge).endswith(f"{SHOWN} (Failed)")
    attempt = LinkAttempt.objects.get(account=world["account"])
    assert "3-D Secure not completed" in str(attempt) and "three_ds" not in str(attempt)


@pytest.mark.parametrize(
    ("amount", "currency", "signed", "shown"),
    [
        ("50000", "USD", False, "50,000.00 USD"),
        ("1234567.5", "eur", False, "1,234,567.50 EUR"),
        ("5000.00", "JPY", False, "5,000 JPY"),
        ("12.30", "USD", True, "+12.30 USD"),
        ("-1000.00", "USD", True, "-1,000.00 USD"),
        ("0.00", "USD", False, "0.00 USD"),
    ],
)
def test_i6_money_text_has_separators_minor_units_and_the_currency(amount, currency, signed, shown):
    assert money_text(Decimal(amount), currency, signed=signed) == shown


def test_money_text_of_no_amount_is_a_dash():
    assert money_text(None, "USD") == "—"


def test_reason_labels_cover_every_link_reason_and_the_charge_codes():
    for code, _label in LinkAttempt.Reason.choices:
        assert "_" not in reason_label(code) and reason_label(code)
    assert reason_label("no_usable_method") == "No active, verified payment method"
    assert reason_label("some_new_code") == "Some new code"
    assert reason_label("") == ""


def test_payment_method_failure_reason_codes_are_known_labels():
    """Methods store the link reasons (LINK-5/6): the mapping knows each code a method can carry."""
    assert PaymentMethod._meta.get_field("failure_reason")
    assert reason_label("agreement_not_approved") == "Agreement not approved"


@pytest.mark.django_db
def test_link_5_payment_method_page_shows_its_failure_reason_in_words(client, superuser):
    """LINK-5: a method that failed for want of 3-D Secure says so in words on its own page."""
    method = CardMethodFactory(status=PaymentMethod.Status.FAILED, failure_reason="three_ds_not_completed")
    client.force_login(superuser)
    page = client.get(reverse("admin:payments_paymentmethod_change", args=[method.pk])).content.decode()
    assert "3-D Secure not completed" in page
    assert "three_ds_not_completed" not in page
