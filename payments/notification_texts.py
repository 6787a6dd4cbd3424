"""Words of each notification (NOTIFY-1), per language; English is the default.

A text is ``(title, body)``, both ``str.format`` templates over the event's ``params``. A
language or a kind missing here falls back to English. ``params`` carry at most a card's network
and last four digits (NOTIFY-2), never a number.
"""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"

# The customer's language, from the account's registration country (accounts carry no language
# of their own yet). Countries not listed get English.
LANGUAGE_OF_COUNTRY = {"DE": "de", "AT": "de", "CH": "de", "LI": "de"}

TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "card_link_failed": (
            "Your card ending {last4} could not be linked",
            "We could not link your {network} card ending {last4}: {reason} Nothing was charged.",
        ),
        "three_ds_waiting": (
            "Confirm your card ending {last4} with 3-D Secure",
            "Your bank asks you to confirm {purpose} with 3-D Secure. Open the verification link, "
            "complete the check, then retry the payment.",
        ),
        "charge_failed": (
            "A payment of {amount} {currency} failed",
            "We could not charge {amount} {currency} for bill {bill}: {reason}",
        ),
        "card_expiring": (
            "Your card ending {last4} expires soon",
            "Your {network} card ending {last4} expires at the end of {expiry}. Link a new card "
            "before then so that your services keep running.",
        ),
        "bill_overdue": (
            "{level_name}: bill {bill} is overdue",
            "Bill {bill} of {outstanding} {currency} was due on {due_date} and is {days} day(s) "
            "overdue. Please pay it.{final}",
        ),
        "credit_hold_started": (
            "Your account is on credit hold",
            "Because bill {bill} is still unpaid after its final notice, new subscription orders "
            "are refused until the overdue bills are paid. Running resources are not affected.",
        ),
        "credit_hold_ended": (
            "Your credit hold has ended",
            "New subscription orders are accepted again.",
        ),
        "credit_application_decided": (
            "Your credit application was {decision}",
            "Your application for a credit limit of {limit} {currency} was {decision}.{note}",
        ),
        "claim_decided": (
            "Your transfer claim was {decision}",
            "Your claim for a transfer of {amount} {currency} (reference {reference}) was {decision}.{note}",
        ),
        "transfer_credited": (
            "{amount} {currency} credited to your account",
            "Your bank transfer of {amount} {currency} was credited to your account balance.",
        ),
    },
    "de": {
        "card_link_failed": (
            "Ihre Karte mit Endziffern {last4} konnte nicht verknüpft werden",
            "Wir konnten Ihre {network}-Karte mit Endziffern {last4} nicht verknüpfen: {reason} "
            "Es wurde nichts belastet.",
        ),
        "bill_overdue": (
            "{level_name}: Rechnung {bill} ist überfällig",
            "Rechnung {bill} über {outstanding} {currency} war am {due_date} fällig und ist seit "
            "{days} Tag(en) überfällig. Bitte begleichen Sie sie.{final}",
        ),
        "transfer_credited": (
            "{amount} {currency} gutgeschrieben",
            "Ihre Überweisung über {amount} {currency} wurde Ihrem Kontoguthaben gutgeschrieben.",
        ),
    },
}


def language_for_country(country: str) -> str:
    return LANGUAGE_OF_COUNTRY.get(str(country).upper(), DEFAULT_LANGUAGE)


class _Blank(dict):
    def __missing__(self, key: str) -> str:  # a param an old row lacks renders empty, never a crash
        return ""


def message_text(*, kind: str, language: str, params: dict) -> tuple[str, str]:
    """The (title, body) of ``kind`` in ``language``, else English."""
    texts = TEXTS.get(language, {})
    if kind not in texts:
        language, texts = DEFAULT_LANGUAGE, TEXTS[DEFAULT_LANGUAGE]
    title, body = texts[kind]
    values = _Blank(params)
    return title.format_map(values), body.format_map(values)


def text_language(*, kind: str, language: str) -> str:
    """The language the text of ``kind`` is really written in (English when ``language`` lacks it)."""
    return language if kind in TEXTS.get(language, {}) else DEFAULT_LANGUAGE
