"""Bulk loading for the benchmarks: ``COPY`` rows of any model, and the accounts and payment
methods that several benchmarks need.

``copy_rows`` writes every concrete column of the model (PostgreSQL knows none of Django's
defaults, so a column left out of a ``COPY`` would be NULL): the columns a benchmark varies per
row, the ones it fixes for the whole load, and Django's own default for the rest. Loading
through ``COPY`` fires every constraint and trigger as an ORM insert would; the audit triggers
are statement-level (``billing_backoffice.audit``), so one ``COPY`` writes its events in one
statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import connection, models

from payments.models import Account, PaymentMethod

# A few hundred words: names made of two of them share trigrams the way real company names do,
# so a trigram search matches a realistic fraction of the table, not all of it or nothing.
WORDS = (
    "acme alpine amber anchor apex arbor arctic argent atlas aurora azure badger baltic basalt beacon birch "
    "bison blue bolt boreal bright bronze cactus canyon capital cardinal cascade cedar central citadel cliff "
    "cobalt comet condor copper coral cosmos crane crest crimson crystal cypress dawn delta desert diamond "
    "dolphin dragon eagle echo eclipse ember emerald falcon fern fjord flint forest fox frontier galaxy garnet "
    "glacier global golden granite graphite harbor harvest hawk heron highland horizon hudson indigo iris iron "
    "island ivory jade jaguar juniper kestrel keystone lagoon lake lantern larch laurel legacy liberty lime "
    "linden lotus lunar lynx magnet mango maple marble marina meadow mercury meridian mesa metro midland "
    "mint mistral monarch moss mountain nebula neptune nimbus noble north nova oak oasis ocean olive omega onyx "
    "orbit orchid osprey otter pacific panda panther peak pearl pelican pepper phoenix pilot pine pioneer "
    "pixel planet polar prairie prism pulse quantum quartz quest radiant rapid raven redwood reef ridge river "
    "robin rocket ruby saffron sage salmon sapphire saturn sequoia shadow sierra silver sky slate solar spark "
    "spruce star sterling stone storm summit sun swift tango teal tempest terra thunder tiger timber titan "
    "topaz tundra twilight unity urban valley vanguard velvet venture vertex violet vista vortex walnut "
    "willow wind winter wolf zenith zephyr"
).split()
LEGAL_FORMS = ("Ltd", "LLC", "GmbH", "Inc", "Pte Ltd", "SA", "BV", "", "", "")


def company_name(n: int) -> str:
    """A deterministic two-word company name, e.g. ``Cobalt Harbor 123 GmbH``."""
    first = WORDS[n % len(WORDS)]
    second = WORDS[(n // len(WORDS) * 7 + n) % len(WORDS)]
    form = LEGAL_FORMS[n % len(LEGAL_FORMS)]
    return f"{first.title()} {second.title()} {n % 1000} {form}".strip()


def _column_default(field: models.Field):
    if field.has_default():
        if callable(field.default):
            raise ValueError(f"{field.model.__name__}.{field.name} has a per-row default: give it")
        value = field.get_default()
        return json.dumps(value) if isinstance(field, models.JSONField) else value
    if field.null:
        return None
    if field.empty_strings_allowed and field.blank:
        return ""
    raise ValueError(f"{field.model.__name__}.{field.name} has no default: give it")


def copy_rows(model: type[models.Model], varying: Sequence[str], rows: Iterable[tuple], **fixed) -> int:
    """``COPY`` rows into ``model``'s table; returns how many.

    ``varying``: field names (attnames, e.g. ``account_id``) given by each row tuple, in order;
    ``fixed``: a value per field for every row; every other column gets the field's default.
    """
    by_name = {f.attname: f for f in model._meta.concrete_fields if not f.primary_key}
    unknown = (set(varying) | set(fixed)) - set(by_name)
    if unknown:
        raise ValueError(f"{model.__name__} has no column {sorted(unknown)}")
    rest = [name for name in by_name if name not in varying and name not in fixed]
    tail = tuple(fixed.values()) + tuple(_column_default(by_name[name]) for name in rest)
    columns = ", ".join(by_name[name].column for name in (*varying, *fixed, *rest))
    count = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row + tail)
            count += 1
    return count


def ids_of(model: type[models.Model], *, after: int = 0) -> list[int]:
    """Primary keys above ``after``, ascending: the rows a ``COPY`` just added."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {model._meta.db_table} WHERE id > %s ORDER BY id", [after])
        return [row[0] for row in cursor.fetchall()]


def max_id(model: type[models.Model]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {model._meta.db_table}")
        return cursor.fetchone()[0]


def load_accounts(count: int, *, now: datetime, start: int = 0, account_managers: Sequence[int] = ()) -> list[int]:
    """``count`` active accounts (UIDs ``8`` + 15 digits from ``start``); their ids, ascending.
    With ``account_managers`` (user ids), each account but every tenth has one of them, in turn."""
    before = max_id(Account)
    regions = (("US", "US"), ("DE", "EU"), ("GB", "EUROPE_NON_EU"), ("MY", "MY"), ("SG", "OTHER"))

    def manager_of(n: int) -> int | None:
        return account_managers[n % len(account_managers)] if account_managers and n % 10 else None

    copy_rows(
        Account,
        ("uid", "name", "email", "kind", "country", "region", "account_manager_id"),
        (
            (f"8{n:015d}", company_name(n), f"billing{n}@example.com", "enterprise" if n % 3 == 0 else "individual",
             *regions[n % len(regions)], manager_of(n))
            for n in range(start, start + count)
        ),
        created_at=now,
        kyc_status="not_required",
        credit_limit=Decimal("0.00"),
    )
    return ids_of(Account, after=before)


def load_methods(account_ids: Sequence[int], *, per_account: int, now: datetime, paypal_every: int = 10,
                 start: int = 0) -> list[tuple[int, int, str]]:
    """``per_account`` methods per account: the first active and the default, the others active
    or removed; one in ``paypal_every`` is PayPal. Returns ``(method id, account id, kind)``."""
    before = max_id(PaymentMethod)
    networks = ("visa", "mastercard", "amex", "jcb")

    def rows():
        n = start
        for account_id in account_ids:
            for slot in range(per_account):
                status = "active" if slot < 2 or n % 3 else "removed"
                common = (account_id, status, slot == 0, now)
                if n % paypal_every == paypal_every - 1 and slot:
                    yield (*common, "paypal", "", "", "", "", "", "", None, None, f"BENCHPAYER{n}",
                           f"payer{n}@example.com", "US", f"ba_approve_{n:016x}", "approved", True)
                else:
                    yield (*common, "card", f"tok_approve_{n:024x}", f"bench-fp-{n:020d}", f"{n % 10000:04d}",
                           networks[n % len(networks)], "credit", "US", 1 + n % 12, 2030 + n % 5, "", "", "", "", "",
                           None)
                n += 1

    copy_rows(
        PaymentMethod,
        ("account_id", "status", "is_default", "created_at", "kind", "gateway_token", "fingerprint", "last4",
         "network", "funding", "issuing_country", "exp_month", "exp_year", "paypal_payer_id", "paypal_email",
         "paypal_country", "agreement_id", "agreement_state", "has_funding_source"),
        rows(),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, account_id, kind FROM {PaymentMethod._meta.db_table} WHERE id > %s ORDER BY id", [before]
        )
        return cursor.fetchall()
