"""Failure reasons in words: the one mapping from the codes stored on charges, payment methods and
link attempts (``three_ds_not_completed``) to what staff read ("3-D Secure not completed").

Link attempts carry the codes as model choices (``LinkAttempt.Reason``, whose labels also name the
rule); charges and payment methods store the same codes, and a few of their own, in plain text
columns. ``reason_label`` is what every screen shows; an unknown code is shown as itself, made
readable (never an empty cell for a stored reason).
"""

from __future__ import annotations

import re

from payments.models import LinkAttempt

_RULE_SUFFIX = re.compile(r"\s*\([A-Z]+-\d+\)$")

# Codes only charges use (payments.services.charge_execution.Reason).
_CHARGE_ONLY = {
    "no_usable_method": "No active, verified payment method",
    "credit_account": "Credit account: pays by bank transfer",
    "bill_already_paid": "Bill already paid",
    "insufficient_funds": "Insufficient funds",
}

FAILURE_REASONS: dict[str, str] = {
    **{code: _RULE_SUFFIX.sub("", str(label)) for code, label in LinkAttempt.Reason.choices},
    **_CHARGE_ONLY,
}


def reason_label(code: str | None) -> str:
    """``"three_ds_not_completed"`` -> ``"3-D Secure not completed"``; ``""`` -> ``""``."""
    if not code:
        return ""
    return FAILURE_REASONS.get(code) or code.replace("_", " ").capitalize()


def reason_choices(codes) -> list[tuple[str, str]]:
    """``(code, label)`` pairs for a list filter, ordered by label."""
    return sorted(((code, reason_label(code)) for code in codes), key=lambda pair: pair[1])
