"""SEC-1 at the edge: free text that holds a card number is refused before anything keeps it.

A cardholder who types the card number as the name, a PayPal payer id that is a PAN, a claim's
bank reference copied from a card statement: each would otherwise be stored, echoed by the API,
shown in the admin and kept forever in the append-only audit tables. Detection is the log
filter's own (``redact_card_numbers``: 13-19 digits, spaces or dashes allowed, passing Luhn), so
what the logs would mask is exactly what the edge refuses.

- ``card_number_free``: a Django validator (forms, model forms, DRF fields).
- ``free_text_check``: the same check for services, so no path (admin, API, command) bypasses it.
The error never repeats the input.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from billing_backoffice.errors import CARD_NUMBER_MESSAGE, CardNumberInText  # noqa: F401 (raised here)
from billing_backoffice.logging import redact_card_numbers

MESSAGE = CARD_NUMBER_MESSAGE


def contains_card_number(value) -> bool:
    if not isinstance(value, str):
        return False
    # The log filter skips a digit run right after a '.' (a duration such as 0.0123...s); in a
    # name or a reference such as "INV.4111111111111111" the run is a card number all the same.
    undotted = value.replace(".", "/")
    return redact_card_numbers(value) != value or redact_card_numbers(undotted) != undotted


def card_number_free(value) -> None:
    """Validator: refuse a value holding a 13-19 digit Luhn-valid run (SEC-1)."""
    if contains_card_number(value):
        raise ValidationError(MESSAGE, code=CardNumberInText.code)


def free_text_check(**fields) -> None:
    """SEC-1 for services: raise ``CardNumberInText`` naming the first field holding a card number."""
    for name, value in fields.items():
        if contains_card_number(value):
            raise CardNumberInText(f"{name.replace('_', ' ').capitalize()}: {MESSAGE}")


class ForgetsCardNumbers:
    """Form mixin: a field refused for holding a card number is shown empty again, so the page
    that reports the error never shows the number back (SEC-1)."""

    def full_clean(self):
        super().full_clean()
        if not self.is_bound or not self._errors:
            return
        refused = [
            name for name, errors in self._errors.as_data().items()
            if any(error.code == CardNumberInText.code for error in errors)
        ]
        if refused:
            data = self.data.copy()
            for name in refused:
                data[self.add_prefix(name)] = ""
            self.data = data
