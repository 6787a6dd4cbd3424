"""REM-7: a receiving account is known by its bank and its number.

A statement that names another bank (another BIC in camt ``Acct/Svcr``, another national bank
code or BIC in an MT940 ``:25:``) for one of our numbers is for another account: it is refused
whole, like a statement for a number we do not know, and nothing is recorded.
"""

from __future__ import annotations

import pytest

from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.parsers.mt940 import account_identification
from remittances.services.receiving import UnknownReceivingAccount
from remittances.services.statements import statement_import
from tests.remittances.samples import build

pytestmark = pytest.mark.django_db

LOCAL_NUMBER = "0532013000"


def receiving(*, number=build.SHARED_IBAN, bic="EXBKDEFFXXX", bank_code="", now) -> RemittanceAccount:
    return RemittanceAccount.objects.create(
        kind=RemittanceAccount.Kind.NON_DEDICATED, number=number, bank_name="Example Bank Europe", bic=bic,
        bank_code=bank_code, bank_country="DE", currency="USD", beneficiary_name="Cloud Ltd", issued_at=now,
    )


def camt_at(bic: str) -> bytes:
    return build.camt(iban=build.SHARED_IBAN).replace("<BICFI>EXBKDEFFXXX</BICFI>", f"<BICFI>{bic}</BICFI>").encode()


def mt940_for(account: str) -> bytes:
    return build.mt940_day(account=account).encode()


def nothing_recorded() -> bool:
    return not BankStatement.objects.exists() and not BankTransaction.objects.exists()


def test_rem_7_camt_for_our_number_at_another_bic_is_refused(now):
    receiving(now=now)
    with pytest.raises(UnknownReceivingAccount, match="another bank is another account") as refused:
        statement_import(data=camt_at("COBADEFFXXX"), now=now)
    assert refused.value.rule == "REM-7"
    assert nothing_recorded()


@pytest.mark.parametrize("bic", ["EXBKDEFFXXX", "EXBKDEFF"])
def test_rem_7_camt_from_our_bank_imports_with_an_eight_or_eleven_character_bic(bic, now):
    receiving(now=now)
    summary = statement_import(data=camt_at(bic), now=now)
    assert summary.new_statements == 1 and summary.entries == build.STANDARD_LINES


def test_rem_7_mt940_with_another_national_bank_code_is_refused(now):
    receiving(number=LOCAL_NUMBER, bank_code="37040044", now=now)
    with pytest.raises(UnknownReceivingAccount, match="at bank 10020030"):
        statement_import(data=mt940_for(f"10020030/{LOCAL_NUMBER}"), now=now)
    assert nothing_recorded()


def test_rem_7_mt940_with_our_bank_code_imports(now):
    ours = receiving(number=LOCAL_NUMBER, bank_code="37040044", now=now)
    summary = statement_import(data=mt940_for(f"37040044/{LOCAL_NUMBER}"), now=now)
    assert summary.entries == build.MT940_LINES
    assert BankStatement.objects.get().receiving_account == ours


def test_rem_7_mt940_bank_code_known_from_the_bic_registry_or_the_iban(now):
    # DRESDEFF508's registry entry names BLZ 50880050; an IBAN carries its own bank code.
    receiving(number="0194774600888", bic="DRESDEFF508", now=now)
    assert statement_import(data=mt940_for("50880050/0194774600888"), now=now).new_statements == 1
    with pytest.raises(UnknownReceivingAccount):
        statement_import(data=mt940_for("50880051/0194774600888"), now=now)


def test_rem_7_mt940_naming_another_bic_in_25_is_refused_and_ours_imports(now):
    receiving(number=LOCAL_NUMBER, now=now)
    with pytest.raises(UnknownReceivingAccount):
        statement_import(data=mt940_for(f"COBADEFFXXX/{LOCAL_NUMBER}"), now=now)
    assert nothing_recorded()
    assert statement_import(data=mt940_for(f"EXBKDEFF/{LOCAL_NUMBER}"), now=now).new_statements == 1


def test_rem_7_mt940_account_identification_forms():
    assert account_identification("DE89 3704 0044 0532 0130 00") == ("", "DE89370400440532013000", (
        "DE89370400440532013000",
    ))
    code, number, spellings = account_identification("37040044/0532013000")
    assert (code, number) == ("37040044", "0532013000")
    code, number, spellings = account_identification("UBRTHUHB/123456789150ABCDEF002/HUF")
    assert (code, number) == ("UBRTHUHB", "123456789150ABCDEF002")
    code, number, spellings = account_identification("1291.99.348EUR")
    assert code == "" and "129199348" in spellings and "1291.99.348" in spellings
