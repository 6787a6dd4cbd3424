"""The one account field of admin forms: pick a cloud account by UID or name, with autocomplete.

Every form that names an account (credit application, dedicated account, claim, reminder pause,
refund, transfer) uses ``AccountChoiceField``. The widget is Django admin's own autocomplete
(select2 over ``/admin/autocomplete/``), which searches through ``AccountAdmin.get_search_results``
(UID or id for digits, exact e-mail, part of the name on the trigram index) and answers only to
staff who may view accounts. The field also takes a UID or id typed or posted as is (a link that
pre-fills the form, a browser without JavaScript), so "Select a valid choice" never greets a UID.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError

from billing_backoffice.free_text import contains_card_number
from payments.models import Account
from payments.selectors import account_find

HELP_TEXT = "Type the account's UID or part of its name, then choose it from the list."


def _account_of(value) -> Account | None:
    term = str(value).strip().replace(" ", "") if value is not None else ""
    return account_find(term) if term.isdigit() else None


class AccountAutocomplete(AutocompleteSelect):
    """The admin's autocomplete; a UID given as the value is shown as that account."""

    def optgroups(self, name, value, attr=None):
        accounts = (_account_of(v) for v in value if v not in (None, ""))
        return super().optgroups(name, [str(a.pk) for a in accounts if a is not None], attr)


class AccountChoiceField(forms.ModelChoiceField):
    """A cloud account by UID, id or (through the autocomplete) name; ``cleaned_data`` holds the Account.

    ``source_field`` is the model field the form fills in (e.g. ``CreditLimitRequest.account``): the
    autocomplete endpoint checks that it points at accounts.
    """

    default_error_messages = {
        "invalid_choice": "No account with UID or id %(value)s: type its UID or part of its name and choose it.",
    }

    def __init__(self, source_field, admin_site=None, **kwargs):
        kwargs.setdefault("queryset", Account.objects.all())
        kwargs.setdefault("widget", AccountAutocomplete(source_field, admin_site or admin.site))
        kwargs.setdefault("help_text", HELP_TEXT)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, Account):
            return value
        account = _account_of(value)
        if account is None:
            # SEC-1: a card number typed here by mistake is never shown back.
            shown = "given" if contains_card_number(str(value)) else str(value)[:40]
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice", params={"value": shown})
        return account
