"""SEC-3: text an outsider controls is escaped on every admin page that shows it.

Customers type account names, company and card holder names, PayPal e-mails, claim details and
credit justifications in the console; payers type names and remittance information into their
bank transfers, which arrive in statements. Each gets a script payload, written straight into
the database (no form or service cleans it first), and each admin page that can show it is
fetched: the raw payload must never appear, and the escaped text must (so the page did show it).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape

from payments.models import Account, LedgerEntry, PaymentMethod
from payments.services.ledger import ledger_post
from remittances.models import BankTransaction, CreditLimitRequest, RemittanceAccount, RemittanceClaim
from remittances.services import credit as credit_services
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory, UserFactory
from tests.payments.invariants import credit
from tests.helpers.claims import bank_txn, console_claim, dedicated_account

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
RAW = (SCRIPT, "<img src=x onerror=alert(1)>")


def payload(field: str, kind: str) -> str:
    """A payload tagged with its field, so each field's escaped text can be found on its own."""
    return f"{field}{SCRIPT if kind == 'script' else ATTRIBUTE}"


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_escaped(client, url: str, *shown: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    html = response.content.decode()
    for raw in RAW:
        assert raw not in html, f"unescaped {raw!r} on {url}"
    for text in shown:
        assert escape(text) in html, f"{text!r} not shown (escaped) on {url}"
    return html


@pytest.fixture
def root(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    return client


@pytest.fixture(params=["script", "attribute"])
def kind(request) -> str:
    return request.param


def test_sec_3_account_company_card_holder_and_paypal_texts_are_escaped(root, now, kind):
    name, company, holder = payload("account", kind), payload("company", kind), payload("holder", kind)
    email = payload("paypal", kind) + "@example.com"
    account = AccountFactory(name=name, email=payload("email", kind) + "@example.com")
    card = CardMethodFactory(account=account, cardholder_name=holder, company_name=company, is_default=True)
    paypal = PayPalMethodFactory(account=account, paypal_email=email)
    credit(account, "10.00", now=now)

    assert_escaped(root, admin_url(Account, "changelist"), name)
    assert_escaped(root, admin_url(Account, "change", account.pk), name)
    assert_escaped(root, admin_url(Account, "history", account.pk), name)
    assert_escaped(root, admin_url(PaymentMethod, "changelist"))
    assert_escaped(root, admin_url(PaymentMethod, "change", card.pk), holder, company)
    assert_escaped(root, admin_url(PaymentMethod, "change", paypal.pk), email)
    assert_escaped(root, admin_url(PaymentMethod, "changelist") + f"?q={email}")
    assert_escaped(root, reverse("admin:payments_ledgerentry_account", args=[account.pk]), name)
    assert_escaped(root, reverse("admin:payments_bill_settlement", args=[account.pk]), name)
    # Reflected: the search term is echoed back in the search box and the result line.
    assert_escaped(root, admin_url(Account, "changelist") + f"?q={name}", name)


def test_sec_3_bank_transaction_payer_texts_are_escaped(root, now, kind):
    payer, info, reference = payload("payer", kind), payload("info", kind), payload("ref", kind)
    txn = bank_txn(now=now, payer_name=payer, remittance_info=info, reference=reference)
    AccountFactory(name=payload("lookalike", kind))  # may be suggested for the transfer

    assert_escaped(root, admin_url(BankTransaction, "changelist"), payer)
    assert_escaped(root, admin_url(BankTransaction, "change", txn.pk), payer, info, reference)
    assert_escaped(root, admin_url(BankTransaction, "changelist") + f"?q={payer}")
    assert_escaped(root, admin_url(RemittanceClaim, "initiate", txn.pk), payer)


def test_sec_3_dedicated_transfer_payer_texts_are_escaped_on_the_account_pages(root, now, kind):
    account = AccountFactory(name=payload("holder-account", kind))
    receiving = dedicated_account(account, now=now)
    payer = payload("payer", kind)
    txn = bank_txn(
        now=now, receiving=receiving, payer_name=payer, status=BankTransaction.Status.MATCHED,
    )
    BankTransaction.objects.filter(pk=txn.pk).update(account=account)
    assert_escaped(root, admin_url(BankTransaction, "change", txn.pk), payer)
    assert_escaped(root, admin_url(RemittanceAccount, "change", receiving.pk), account.name)
    assert_escaped(root, admin_url(RemittanceAccount, "changelist"), account.name)


def test_sec_3_claim_payer_name_and_bank_reference_are_escaped(root, now, kind):
    payer, reference = payload("claimpayer", kind), payload("claimref", kind)
    account = AccountFactory(name=payload("claimaccount", kind))
    waiting = console_claim(account, now=now, amount="77.00", reference=reference, payer_name=payer)
    txn = bank_txn(now=now, amount="88.00", payer_name=payload("txnpayer", kind))
    matched = console_claim(
        account, now=now, amount="88.00", reference=txn.bank_reference, payer_name=payload("matchedpayer", kind)
    )
    assert matched.bank_transaction_id == txn.pk

    assert_escaped(root, admin_url(RemittanceClaim, "changelist"), account.name)
    assert_escaped(root, admin_url(RemittanceClaim, "change", waiting.pk), payer, reference, account.name)
    assert_escaped(root, admin_url(RemittanceClaim, "change", matched.pk), txn.payer_name)
    for step in ("review", "reject", "attach"):
        assert_escaped(root, admin_url(RemittanceClaim, step, matched.pk))
    assert_escaped(root, admin_url(RemittanceClaim, "changelist") + f"?q={reference}", reference)


def test_sec_3_credit_application_justification_is_escaped(root, now, kind):
    justification = payload("justification", kind) + "\nsecond line " + payload("line2", kind)
    account = AccountFactory(name=payload("creditaccount", kind))
    application = credit_services.credit_request_submit(
        account_id=account.pk, requested_limit=Decimal("1000.00"), currency="USD", justification=justification,
        source=CreditLimitRequest.Source.CONSOLE, now=now,
    )
    assert_escaped(root, admin_url(CreditLimitRequest, "changelist"), account.name)
    assert_escaped(root, admin_url(CreditLimitRequest, "change", application.pk), payload("justification", kind))
    for view in ("approve", "reject"):
        assert_escaped(root, admin_url(CreditLimitRequest, view, application.pk), payload("line2", kind))


def test_sec_3_account_name_and_memo_are_escaped_in_the_ledger(root, now, kind):
    account = AccountFactory(name=payload("ledgeraccount", kind))
    memo = payload("memo", kind)
    entry = ledger_post(
        account_id=account.pk, amount=Decimal("5.00"), currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference="xss-ledger-1", memo=memo, now=now,
    ).entry
    assert_escaped(root, admin_url(LedgerEntry, "changelist"))
    assert_escaped(root, admin_url(LedgerEntry, "change", entry.pk), memo)
    assert_escaped(root, reverse("admin:payments_ledgerentry_account", args=[account.pk]), account.name)
