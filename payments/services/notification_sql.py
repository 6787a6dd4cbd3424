"""The outbox written by SQL (NOTIFY-2), for jobs that notify thousands of events at once.

``notify_many`` renders each event's texts in Python and sends them as column arrays; at the
reminder job's scale (hundreds of thousands of events) shipping those arrays costs more than
writing the rows. This module renders the same texts inside the database instead, so a job can
write its events and their notifications in ONE statement: its own rows as a data-modifying
CTE, an ``events`` CTE over their ``RETURNING`` rows, and the ``INSERT ... SELECT ... ON
CONFLICT (event_key, channel) DO NOTHING`` built here, which writes exactly what ``notify_many``
would write for the same events (one console message, delivered by being stored, and one
e-mail, ``pending`` or ``skipped`` without an address; same language choice, texts, params,
truncation). ``tests/payments/test_reminders_set_based.py`` checks the two paths row for row.

Card numbers (SEC-1, NOTIFY-2): the SQL path does not run the log redaction. An event whose
params hold anything like a card number (a run of 13 or more digits, grouped or not: a wider net
than the redaction's, which also checks Luhn) is left out of the SQL insert and returned to the
caller, which hands it to ``notify_many``: the redaction decides for it exactly as for any event.

The ``events`` CTE the caller writes has the columns ``account_id`` (bigint), ``kind``,
``event_key``, ``params`` (jsonb of strings), ``link`` (text), ``seq`` (an order) and
``card_like`` (boolean: ``card_like_sql(...)`` over the params' text, or over just those that
can hold digits a customer chose, such as a bill's reference). Parameters: ``%(now)s`` and
those of ``outbox_params``.
"""

from __future__ import annotations

from string import Formatter

from payments.models import Account, Notification
from payments.notification_texts import DEFAULT_LANGUAGE, LANGUAGE_OF_COUNTRY, TEXTS

Channel, Status = Notification.Channel, Notification.Status

# A superset of ``billing_backoffice.logging``'s digit run (13 to 19 digits, each perhaps followed
# by a space, +, - or %20): an event matching it is notified through ``notify_many``.
CARD_LIKE_RE = "([0-9]([ +-]|%20)?){12,}[0-9]"


def card_like_sql(expression: str) -> str:
    """True where the text ``expression`` holds something like a card number (``CARD_LIKE_RE``)."""
    return f"(COALESCE({expression}, '') ~ %(card_like)s)"


def _literal(text: str) -> str:
    """A constant of this module as an SQL string literal (quotes doubled, % for psycopg)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _concat(template: str, *, row: str) -> str:
    """``template.format_map(params)`` (missing params empty) as SQL over ``{row}.params``."""
    parts = []
    for literal, name, spec, conversion in Formatter().parse(template):
        if literal:
            parts.append(_literal(literal))
        if name is not None:
            if spec or conversion or not name.isidentifier():
                raise ValueError(f"notification texts use plain {{name}} fields only, not {{{name}...}}")
            parts.append(f"({row}.params ->> {_literal(name)})")
    return f"concat({', '.join(parts)})" if parts else "''"


def _wanted_language_sql() -> str:
    """The account's language, from its country (``language_for_country``)."""
    cases = " ".join(f"WHEN {_literal(c)} THEN {_literal(lang)}" for c, lang in LANGUAGE_OF_COUNTRY.items())
    return f"(CASE upper(a.country) {cases} ELSE {_literal(DEFAULT_LANGUAGE)} END)"


def _texts(kinds: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    """(language, kind, title, body) of every text of ``kinds``; each kind needs its English."""
    missing = [kind for kind in kinds if kind not in TEXTS[DEFAULT_LANGUAGE]]
    if missing:
        raise ValueError(f"no English text for notification kind(s) {missing!r}")
    return [
        (language, kind, *texts[kind]) for language, texts in TEXTS.items() for kind in kinds if kind in texts
    ]


def _text_language_sql(kinds: tuple[str, ...]) -> str:
    """``text_language``: the wanted language where the kind has a text in it, else English."""
    wanted = _wanted_language_sql()
    cases = " ".join(
        f"WHEN e.kind = {_literal(kind)} AND {wanted} = {_literal(language)} THEN {_literal(language)}"
        for language, kind, _, _ in _texts(kinds) if language != DEFAULT_LANGUAGE
    )
    return f"(CASE {cases} ELSE {_literal(DEFAULT_LANGUAGE)} END)" if cases else _literal(DEFAULT_LANGUAGE)


def _text_sql(kinds: tuple[str, ...], *, part: int) -> str:
    """The title (``part`` 2) or body (3) of each row ``x`` of ``kinds`` in its language."""
    cases = " ".join(
        f"WHEN x.kind = {_literal(text[1])} AND x.language = {_literal(text[0])} THEN {_concat(text[part], row='x')}"
        for text in _texts(kinds)
    )
    return f"(CASE {cases} END)"


def outbox_ctes(*, kinds: tuple[str, ...]) -> str:
    """CTEs ``outbox_rendered`` and ``notified`` (``RETURNING id, channel, status``) for an
    ``events`` CTE of these ``kinds``; the events left to ``notify_many`` (``card_like``) are
    ``CARD_LIKE_EVENTS_SQL``. Each channel's row is what ``notifications._rows`` builds."""
    table, accounts = Notification._meta.db_table, Account._meta.db_table
    console, email = _literal(Channel.CONSOLE), _literal(Channel.EMAIL)
    return f"""
    outbox_rendered AS (
        SELECT x.*, {_text_sql(kinds, part=2)} AS title, {_text_sql(kinds, part=3)} AS body FROM (
            SELECT e.account_id, e.kind, left(e.event_key, 160) AS event_key, e.params, e.link, e.seq,
                   COALESCE(a.email, '') AS email, {_text_language_sql(kinds)} AS language
            FROM events e JOIN {accounts} a ON a.id = e.account_id
            WHERE NOT e.card_like
        ) x
    ),
    notified AS (
        INSERT INTO {table} (account_id, kind, channel, event_key, language, title, body, link, params, recipient,
                             status, created_at, delivered_at, attempts, last_error)
        SELECT r.account_id, r.kind, ch.channel, r.event_key, r.language, left(r.title, 200), r.body, r.link,
               r.params, CASE WHEN ch.channel = {console} THEN '' ELSE r.email END,
               CASE WHEN ch.channel = {console} THEN {_literal(Status.DELIVERED)}
                    WHEN r.email <> '' THEN {_literal(Status.PENDING)} ELSE {_literal(Status.SKIPPED)} END,
               %(now)s, CASE WHEN ch.channel = {console} THEN %(now)s::timestamptz END, 0, ''
        FROM outbox_rendered r CROSS JOIN (VALUES (1, {console}), (2, {email})) AS ch(n, channel)
        ORDER BY r.seq, ch.n
        ON CONFLICT (event_key, channel) DO NOTHING
        RETURNING id, channel, status
    )"""


def outbox_params(**extra) -> dict:
    return {"card_like": CARD_LIKE_RE, **extra}


PENDING_EMAILS_SQL = (
    f"(SELECT array_agg(id ORDER BY id) FROM notified WHERE channel = {_literal(Channel.EMAIL)} "
    f"AND status = {_literal(Status.PENDING)})"
)
CARD_LIKE_EVENTS_SQL = (
    "(SELECT json_agg(json_build_array(e.account_id, e.kind, e.event_key, e.params, e.link) ORDER BY e.seq) "
    "FROM events e WHERE e.card_like)"
)
