"""SEC-1: no card number or CVV is stored, logged or kept anywhere after linking cards."""

import logging
import re

import pytest
from django.apps import apps
from django.db import connection, models
from stdnum import luhn

from billing_backoffice.logging import RedactCardNumbers, card_numbers_in, redact_card_numbers
from payments.errors import LinkRefused
from payments.models import Account, PaymentMethod
from payments.services import GatewayUnavailable, card_link, three_ds_complete
from tests.helpers.cards import card_input

pytestmark = pytest.mark.django_db

LINKED_NUMBERS = [
    "4242424242424242", "5555555555554444", "378282246310005", "4000000000000002",
    "4000000000009953", "4000000000002206", "4000000000005506", "4000000000003204", "4000000000001190",
]
CVVS = {"123", "1234", "987"}


def link_everything(now):
    account = Account.objects.create(name="Scan", kind="enterprise", country="US", region="US")
    eu = Account.objects.create(name="Scan EU", kind="individual", country="FR", region="EU")
    for number in LINKED_NUMBERS:
        try:
            result = card_link(account_id=account.pk, card=card_input(number, cvv="1234" if number[:2] in ("34", "37") else "987"), now=now)
            if result.challenge:
                three_ds_complete(challenge_id=result.challenge.pk, outcome="success", now=now)
        except (LinkRefused, GatewayUnavailable):
            pass
    with pytest.raises(LinkRefused):  # already linked: the refusal path must not leak it either
        card_link(account_id=eu.pk, card=card_input("5555 5555 5555 4444"), now=now)


def all_rows_as_text() -> str:
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def test_sec_1_no_card_number_or_cvv_in_any_table_after_linking(now):
    link_everything(now)
    dump = all_rows_as_text()
    assert "4242" in dump  # last4 is kept, so the scan really sees the method rows
    assert card_numbers_in(dump, grouped=False) == []
    for number in LINKED_NUMBERS:
        assert number not in dump
    assert not re.search(r"cvv|cvc|security_code|card_number|\bpan\b", dump, re.I)


def test_sec_1_no_model_field_can_hold_a_card_number_or_cvv():
    # Bank account numbers (RemittanceAccount.number) are not card data; any card-ish name is.
    suspicious = re.compile(r"(^|_)(pan|cvv|cvc|cvv2|cvn|card_?number|card_?no|security_code)($|_)")
    offenders = []
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.Field) and suspicious.search(field.name):
                offenders.append(f"{model._meta.label}.{field.name}")
    assert offenders == []
    assert not {f.name for f in PaymentMethod._meta.get_fields()} & {"number", "cvv", "pan"}


def test_sec_1_no_card_number_in_logs_while_linking(now, caplog):
    caplog.set_level(logging.DEBUG)
    link_everything(now)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert card_numbers_in(logged) == []


def test_sec_1_log_filter_redacts_luhn_valid_digit_runs():
    assert redact_card_numbers("card 4242 4242 4242 4242 declined") == "card [REDACTED PAN] declined"
    assert redact_card_numbers("card 4242-4242-4242-4242") == "card [REDACTED PAN]"
    assert redact_card_numbers("order 1234567890123 ok") == "order 1234567890123 ok"  # not Luhn-valid
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "number %s", ("378282246310005",), None)
    RedactCardNumbers().filter(record)
    assert record.getMessage() == "number [REDACTED PAN]"


def test_sec_1_masked_display_shows_last_four_only(now):
    account = Account.objects.create(name="Mask", kind="individual", country="US", region="US")
    method = card_link(account_id=account.pk, card=card_input(), now=now).method
    assert method.masked == "•••• 4242"
    assert str(method) == "Card •••• 4242"


def test_sec_1_card_input_repr_never_shows_number_or_cvv():
    card = card_input("4242424242424242", cvv="987")
    assert "4242424242424242" not in repr(card) and "987" not in repr(card)


def test_sec_1_account_uids_are_never_luhn_valid():
    from payments.models import new_account_uid

    uids = [new_account_uid() for _ in range(2000)]
    assert all(len(uid) == 16 and uid.isdigit() and not luhn.is_valid(uid) for uid in uids)


def test_sec_1_log_filter_leaves_decimal_fractions_alone():
    # 4242424242424242 passes Luhn, but after a decimal point it is a fraction (a task's run time).
    assert redact_card_numbers("succeeded in 0.4242424242424242s") == "succeeded in 0.4242424242424242s"
    assert redact_card_numbers("card=4242424242424242.") == "card=[REDACTED PAN]."
