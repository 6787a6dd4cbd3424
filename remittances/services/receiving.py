"""Which receiving account a statement is for (REM-7).

A receiving account is known by its bank (BIC, or the national bank code of an MT940 ``:25:``
field) and its number: the same number at another bank is another account, and a statement for
it is refused like one for a number we do not know at all.
"""

from __future__ import annotations

import re

from django.conf import settings
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from remittances.models import RemittanceAccount
from remittances.parsers import ParsedStatement
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    UnknownReceivingAccount,
)

_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")


def receiving_accounts(statements: list[ParsedStatement]) -> list[RemittanceAccount]:
    """REM-7: the receiving account of each statement, in one query.

    An account is known by its bank and its number: a statement that names the bank (a BIC, or
    a national bank code) is ours only when that is our account's bank (``same_bank``).
    """
    numbers = {n for s in statements for n in (s.account_number, *s.account_candidates) if n}
    known = {a.number: a for a in RemittanceAccount.objects.filter(number__in=numbers).select_related("account")}
    accounts = []
    for statement in statements:
        spellings = [n for n in (statement.account_number, *statement.account_candidates) if n in known]
        match = next((known[n] for n in spellings if same_bank(statement, known[n])), None)
        if match is not None:
            accounts.append(match)
            continue
        where = f"Statement {statement.identity or '(no id)'} is for account {statement.account_number}"
        if spellings:
            ours = known[spellings[0]]
            raise UnknownReceivingAccount(
                f"{where} at bank {statement.bank_bic or statement.bank_code}; our receiving account "
                f"{ours.number} is at {ours.bank_name} ({ours.bic}). The same number at another bank is "
                "another account; nothing was imported."
            )
        raise UnknownReceivingAccount(
            f"{where}, which is not a receiving account of the back office; nothing was imported."
        )
    return accounts


def _bic8(code: str) -> str:
    """The institution part of a BIC (bank, country, location): ``EXBKDEFFXXX`` -> ``EXBKDEFF``."""
    return code[:8] if _BIC.match(code) else ""


def _bank_codes(account: RemittanceAccount) -> set[str]:
    """The national bank codes that name our account's bank: the one registered with it, its
    IBAN's, and those schwifty's bank registry lists for its BIC."""
    codes = {account.bank_code}
    try:
        codes.add(IBAN(account.number).bank_code)
    except (SchwiftyException, ValueError):
        pass  # a local number: no bank code in it
    try:
        codes.update(BIC(account.bic).domestic_bank_codes)
    except (SchwiftyException, ValueError):
        pass
    if _bic8(account.bic.upper()) == _bic8(settings.REMITTANCE_BANK["bic"].upper()):
        codes.add(settings.REMITTANCE_BANK["bank_code"])  # the configured bank's own code
    return {code.upper() for code in codes if code}


def same_bank(statement: ParsedStatement, account: RemittanceAccount) -> bool:
    """REM-7: nothing the statement says about its bank contradicts our account's bank.

    A BIC is compared by institution (``EXBKDEFF`` = ``EXBKDEFFXXX``); a bank code of an MT940
    ``:25:`` is either the bank's BIC or a national code of our bank (from the IBAN, schwifty's
    bank registry or the configured receiving bank). A statement that names no bank is judged by
    the number alone (an IBAN carries its bank in itself).
    """
    ours = _bic8(account.bic.upper())
    if statement.bank_bic and _bic8(statement.bank_bic) != ours:
        return False
    code = statement.bank_code
    if not code:
        return True
    if _bic8(code) and _bic8(code) == ours:
        return True
    return code in _bank_codes(account)
