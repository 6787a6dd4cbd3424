"""The card form the linking tests fill in (never stored: SEC-1)."""

from __future__ import annotations

from payments.services import CardInput


def card_input(number: str = "4242424242424242", **overrides) -> CardInput:
    """A valid card form, with any field overridden."""
    fields = dict(
        number=number,
        exp_month=12,
        exp_year=2029,
        cvv="1234" if number.startswith(("34", "37")) else "123",
        cardholder_name="Ada Lovelace",
        billing_line1="1 Main St",
        billing_city="Springfield",
        billing_postal_code="12345",
        billing_country="US",
    )
    fields.update(overrides)
    return CardInput(**fields)
