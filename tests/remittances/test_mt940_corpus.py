"""Real bank files nobody here wrote: the mt-940 library's corpus (REM-4, REM-5, REM-7, I6).

Every file whose statements all balance is imported whole (the ASN Bank export of 31 statements
among them, read with the library's ASN layout); every other file is refused, and for the right
reason: an unbalanced statement (REM-5), an MT942 interim report or a fragment that is no
statement, a statement without its account or balances, a balance without a currency. The
receiving accounts are registered from what the statements name (bank code or BIC, number).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.parsers import BadAmount, MalformedStatement, UnsupportedStatement, parse_statement_file
from remittances.services.statement_lines import UnreconciledStatement
from remittances.services.statements import statement_import

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).resolve().parent / "samples" / "mt940_corpus"

BALANCED = {  # file -> number of statements
    "ASNB__0708271685_09022020_164516.940": 31,
    "betterplace__sepa_mt9401.sta": 26,
    "betterplace__with_binary_character.sta": 2,
    "cmxl__mt940.sta": 3,
    "jejik__generic.sta": 2,
    "jejik__rabobank-iban.sta": 2,
    "jejik__sns.sta": 2,
    "mBank__mt940.sta": 1,
    "sberbank__171011_01234945.sta": 1,
    "self-provided__february_30.sta": 1,
    "self-provided__long_statement_number.sta": 1,
    "self-provided__transaction_details_wrapped.sta": 1,
    "self-provided__wrapped_timestamp.sta": 1,
}
UNBALANCED = [  # opening + booked entries != closing in at least one statement (REM-5)
    "betterplace__sepa_snippet.sta", "betterplace__sepa_snippet_broken.sta", "jejik__abnamro.sta",
    "jejik__ing.sta", "jejik__knab.sta", "jejik__postfinance.sta", "jejik__rabobank.sta", "jejik__triodos.sta",
    "mBank__with_newline_in_tnr.sta", "self-provided__details_60-63.sta", "self-provided__malformed_details.sta",
    "self-provided__overly_long_details.sta", "self-provided__raiffeisen-cmi.sta", "self-provided__whitespace.sta",
]
NOT_A_STATEMENT = {  # file -> what the refusal says
    "mBank__mt942.sta": "MT942 interim transaction report",
    "self-provided__mt942.sta": "MT942 interim transaction report",
    "self-provided__invalid_statement.sta": "neither ISO 20022 XML",
    "self-provided__empty_non_swift.sta": "neither ISO 20022 XML",
    "self-provided__sparkassen.sta": "neither ISO 20022 XML",
    **{  # single tags or :61: lines of the libraries' unit tests, no :20: statement around them
        name: "neither ISO 20022 XML"
        for name in (
            "betterplace__amount_formats.sta", "betterplace__currency_in_25.sta", "betterplace__empty_86.sta",
            "betterplace__empty_entry_date.sta", "betterplace__missing_crlf_at_end.sta",
            "cmxl__account_balance_credit.sta", "cmxl__account_balance_debit.sta",
            "cmxl__account_identification_iban.sta", "cmxl__account_identification_legacy.sta",
            "cmxl__available_balance.sta", "cmxl__closing_balance.sta", "cmxl__statement_details.sta",
            "cmxl__statement_line.sta", "cmxl__statement_number.sta",
        )
    },
}
MALFORMED = {
    "betterplace__empty_line.sta": "account identification (:25:) is missing",
    "cmxl__reference.sta": "account identification (:25:) is missing",
    "self-provided__gv_codes.sta": "closing (:62F:/:62M:) balance are required",
}
BAD_AMOUNT = {"self-provided__raphaelm.sta": "not an ISO 4217 currency code"}

_BIC = re.compile(r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def register_accounts_named_in(data: bytes, *, now) -> None:
    """A shared receiving account for each (bank, number) the file's statements name (REM-7)."""
    for statement in parse_statement_file(data):
        number = min((n for n in statement.account_candidates if n.isalnum()), key=len)
        code = statement.bank_code
        bic = code if _BIC.match(code) else "EXBKDEFFXXX"
        RemittanceAccount.objects.get_or_create(
            number=number,
            defaults=dict(
                kind=RemittanceAccount.Kind.NON_DEDICATED, bank_name="Corpus bank", bic=bic,
                bank_code="" if _BIC.match(code) else code, bank_country=bic[4:6],
                currency=statement.currency, beneficiary_name="Cloud Ltd", issued_at=now,
            ),
        )


def test_every_corpus_file_is_classified():
    listed = {*BALANCED, *UNBALANCED, *NOT_A_STATEMENT, *MALFORMED, *BAD_AMOUNT}
    files = {p.name for p in CORPUS.iterdir() if p.name not in ("LICENSE", "README.md")}
    assert files == listed


@pytest.mark.parametrize("name", sorted(BALANCED))
def test_rem_4_every_balanced_real_statement_imports_and_a_second_import_adds_nothing(name, now):
    data = corpus(name)
    register_accounts_named_in(data, now=now)
    lines = sum(len(s.entries) for s in parse_statement_file(data))

    summary = statement_import(data=data, file_name=name, now=now)
    assert (summary.statements, summary.new_statements) == (BALANCED[name], BALANCED[name])
    assert summary.entries == lines == BankTransaction.objects.count()
    assert summary.duplicates == 0
    assert summary.unmatched + summary.rejected + summary.review == lines
    assert BankStatement.objects.count() == BALANCED[name]

    again = statement_import(data=data, file_name=name, now=now)
    assert (again.entries, again.duplicates, again.new_statements) == (lines, lines, 0)
    assert BankTransaction.objects.count() == lines


def test_rem_4_asn_bank_export_reads_the_counterparty_iban_from_its_layout(now):
    data = corpus("ASNB__0708271685_09022020_164516.940")
    register_accounts_named_in(data, now=now)
    statement_import(data=data, now=now)
    first = BankTransaction.objects.order_by("booking_date", "pk").first()
    assert (first.amount, first.entry_kind, first.payer_account) == (
        65, BankTransaction.EntryKind.DEBIT, "NL47INGB9999999999",
    )


@pytest.mark.parametrize("name", UNBALANCED)
def test_rem_5_a_corpus_file_with_an_unbalanced_statement_is_refused_whole(name, now):
    data = corpus(name)
    register_accounts_named_in(data, now=now)
    with pytest.raises(UnreconciledStatement, match="does not reconcile") as refused:
        statement_import(data=data, now=now)
    assert refused.value.rule == "REM-5"
    assert not BankStatement.objects.exists() and not BankTransaction.objects.exists()


@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        *((name, UnsupportedStatement, says) for name, says in NOT_A_STATEMENT.items()),
        *((name, MalformedStatement, says) for name, says in MALFORMED.items()),
        *((name, BadAmount, says) for name, says in BAD_AMOUNT.items()),
    ],
)
def test_a_corpus_file_that_is_no_complete_statement_is_refused_for_its_reason(name, error, says, now):
    with pytest.raises(error) as refused:
        statement_import(data=corpus(name), now=now)
    assert says in refused.value.detail
    assert not BankStatement.objects.exists()
