"""The audit trail in the admin (SEC-2): a per-object "History" and a searchable audit log.

Size: one piece because the audit log's one bounded query (per-table index choice, the
"before" lookup, the key paging) and the History page that renders its rows share one event
shape; split apart, each half would restate the other's assumptions about that query.

- History: the change page's "History" link of every audited model shows that object's events
  (time, who, what changed: field, before -> after) above Django's own admin log. Visible to
  whoever may view the object, like Django's history page.
- Permission changes (a user added to or removed from a group, a permission added to or
  removed from a group; ``billing_backoffice/models.py``) are said in words with the names
  ("user alice added to group Finance staff"), looked up in the same query.
- Audit log (``/admin/pghistory/events/``): every audited change, newest first, filtered by
  model, actor, label and date, searched by object id. Read-only. It needs
  ``pghistory.view_events`` (superusers; the "Auditors" group of payments migration 0005).
  Account managers and finance staff do not have it: it shows every staff member's actions on
  every account, which neither role needs.

Bounded: one query per page whatever the tables' sizes. Each event table contributes at most a
page of rows through one of its indexes ((object, id), (time, id) or (actor, time, id)); each
of those rows finds its previous event (its "before") through the (object, id) index; the
union is cut to a page. Paging is by key ("older than this event"), never by OFFSET.

Imported from ``payments/admin/__init__.py``, so it is registered with the other admins.

"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, models
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.http import urlencode
from pghistory.models import Events

from billing_backoffice.admin_site import MAX_ID
from billing_backoffice.audit import BASELINE_LABEL, HIDDEN_COLUMNS, audited_models, event_model_for

PAGE_SIZE = 50
HISTORY_LIMIT = 200  # events on an object's History page (the audit log pages further back)
AUDIT_LOG_PERMISSION = "pghistory.view_events"
EMPTY = "—"

# The app's name in the admin index ("Pghistory" otherwise); not part of any migration.
apps.get_app_config("pghistory").verbose_name = "Audit trail"


# --- reading events ---------------------------------------------------------------------------


class RelatedRef(str):
    """``#5`` until ``name_related_objects`` replaces it with the object's name ("approver")."""

    def __new__(cls, related_model, pk):
        ref = super().__new__(cls, f"#{pk}")
        ref.related_model, ref.pk = related_model, pk
        return ref


def name_related_objects(rows: list[AuditRow]) -> None:
    """Show a related object by its name (a user's username, an account's UID and name, a bill's
    reference: its ``__str__``), never ``#<id>`` (issue 10). One query per related model on the
    page, whatever the number of events; a row deleted since keeps its ``#<id>``."""
    wanted: dict[type[models.Model], set] = {}
    for row in rows:
        for change in row.changes:
            for value in (change.before, change.after):
                if isinstance(value, RelatedRef):
                    wanted.setdefault(value.related_model, set()).add(_pk_of(value))
    names = {
        (model, obj.pk): str(obj)
        for model, pks in wanted.items()
        for obj in model._default_manager.filter(pk__in=pks)
    }
    for row in rows:
        for change in row.changes:
            for attr in ("before", "after"):
                value = getattr(change, attr)
                if isinstance(value, RelatedRef):
                    setattr(change, attr, names.get((value.related_model, _pk_of(value)), str(value)))


def _pk_of(ref: RelatedRef):
    # JSON gives the id as text or a number; the model's pk is a number (or a UUID).
    pk = ref.pk
    return int(pk) if isinstance(pk, str) and pk.isdigit() else pk


@dataclass
class Change:
    field: str
    before: str
    after: str


@dataclass
class AuditRow:
    model: type[models.Model]
    event_id: int
    created_at: datetime
    label: str
    object_id: int
    context: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    previous: dict[str, Any] | None = field(default=None, repr=False)
    names: dict[str, str] = field(default_factory=dict, repr=False)  # permission links: "user:5"

    @property
    def actor(self) -> str:
        return str(self.context.get("actor") or "")

    @property
    def model_name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def cursor(self) -> str:
        return f"{self.created_at.isoformat()}~{self.model._meta.label_lower}~{self.event_id}"

    @property
    def object_url(self) -> str:
        opts = self.model._meta
        try:
            return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[self.object_id])
        except NoReverseMatch:
            return ""


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    model: str  # label_lower
    event_id: int

    @classmethod
    def parse(cls, text: str) -> Cursor:
        try:
            stamp, model, event_id = text.split("~")
            created_at = datetime.fromisoformat(stamp)
            if created_at.tzinfo is None:
                raise ValueError
            return cls(created_at, model, int(event_id))
        except ValueError:
            raise ValidationError("Invalid page position.") from None


def _branch(
    model: type[models.Model],
    *,
    object_id: int | None,
    actor: str,
    label: str,
    since: datetime | None,
    until: datetime | None,
    cursor: Cursor | None,
    limit: int,
) -> tuple[str, list]:
    """One event table's newest ``limit`` matching events, each with its previous event."""
    event_model = event_model_for(model)
    table = connection.ops.quote_name(event_model._meta.db_table)
    name = model._meta.label_lower
    where, params = ["TRUE"], []
    if object_id is not None:
        where.append("e.pgh_obj_id = %s")
        params.append(object_id)
    if actor:
        where.append("(e.pgh_context ->> 'actor') = %s")
        params.append(actor)
    if label:
        where.append("e.pgh_label = %s")
        params.append(label)
    if since:
        where.append("e.pgh_created_at >= %s")
        params.append(since)
    if until:
        where.append("e.pgh_created_at < %s")
        params.append(until)
    if cursor:
        # Older than the cursor in the order (time, model, id), all descending; models compare
        # like Python strings, the outer ORDER BY uses COLLATE "C" to agree.
        if name == cursor.model:
            where.append("(e.pgh_created_at, e.pgh_id) < (%s, %s)")
            params += [cursor.created_at, cursor.event_id]
        elif name < cursor.model:
            where.append("e.pgh_created_at <= %s")
            params.append(cursor.created_at)
        else:
            where.append("e.pgh_created_at < %s")
            params.append(cursor.created_at)
    sql = f"""(
        SELECT %s::text AS model, c.pgh_id, c.pgh_created_at, c.pgh_label, c.pgh_obj_id,
               c.pgh_context::text AS context, row_to_json(c)::text AS data,
               (SELECT row_to_json(p)::text FROM {table} p
                WHERE p.pgh_obj_id = c.pgh_obj_id AND p.pgh_id < c.pgh_id
                ORDER BY p.pgh_id DESC LIMIT 1) AS previous,
               {_link_names_sql(model, table)} AS names
        FROM (SELECT * FROM {table} e WHERE {" AND ".join(where)}
              ORDER BY e.pgh_created_at DESC, e.pgh_id DESC LIMIT %s) c
    )"""
    return sql, [name, *params, limit]


def audit_rows(
    *,
    models_: list[type[models.Model]] | None = None,
    object_id: int | None = None,
    actor: str = "",
    label: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> list[AuditRow]:
    """The newest ``limit`` events matching the filters, each with its changes; one query."""
    chosen = models_ if models_ is not None else audited_models()
    if not chosen:
        return []
    branches, params = [], []
    for model in chosen:
        sql, branch_params = _branch(
            model, object_id=object_id, actor=actor, label=label, since=since, until=until,
            cursor=cursor, limit=limit,
        )
        branches.append(sql)
        params += branch_params
    sql = (
        "SELECT * FROM (" + " UNION ALL ".join(branches) + ") u "
        'ORDER BY pgh_created_at DESC, model COLLATE "C" DESC, pgh_id DESC LIMIT %s'
    )
    by_name = {model._meta.label_lower: model for model in chosen}
    with connection.cursor() as db:
        db.execute(sql, [*params, limit])
        rows = db.fetchall()
    result = [_row(by_name[name], *rest) for name, *rest in rows]
    _describe_permission_links(result)
    name_related_objects(result)
    return result


def _load(text: str | None) -> dict[str, Any] | None:
    # parse_float keeps amounts exact ("100.00", not 100.0).
    return json.loads(text, parse_float=Decimal) if text else None


def _row(model, event_id, created_at, label, object_id, context, data, previous, names) -> AuditRow:
    row = AuditRow(
        model=model,
        event_id=event_id,
        created_at=created_at,
        label=label,
        object_id=object_id,
        context=_load(context) or {},
        data=_load(data) or {},
        previous=_load(previous),
        names=_load(names) or {},
    )
    row.changes, row.note = describe(model, label, row.data, row.previous)
    return row


def describe(model, label: str, data: dict, previous: dict | None) -> tuple[list[Change], str]:
    """The changes an event made: (field, before, after) for each changed column."""
    columns = _columns(model)
    after = {k: v for k, v in data.items() if k in columns}
    if previous is None or label in ("insert", BASELINE_LABEL):
        note = {
            "insert": "created",
            BASELINE_LABEL: "state when the audit trail began",
        }.get(label, "earlier state not recorded")
        changes = [
            Change(columns[k].verbose_name, EMPTY, _show(columns[k], k, v))
            for k, v in after.items()
            if v not in (None, "") and k != "id"
        ]
        return changes, note
    if label == "delete":
        return [], "deleted (the last state is the previous event)"
    before = {k: v for k, v in previous.items() if k in columns}
    changes = [
        Change(columns[k].verbose_name, _show(columns[k], k, before.get(k)), _show(columns[k], k, v))
        for k, v in after.items()
        if before.get(k) != v
    ]
    return changes, "" if changes else "no visible change"


def _columns(model) -> dict[str, models.Field]:
    """Column name -> the audited model's field, for the columns its event table copies."""
    event_columns = {f.column for f in event_model_for(model)._meta.fields}
    return {f.column: f for f in model._meta.concrete_fields if f.column in event_columns}


def _show(model_field: models.Field, column: str, value: Any) -> str:
    if column in HIDDEN_COLUMNS:
        return "(hidden)" if value else EMPTY
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if model_field.is_relation:
        return RelatedRef(model_field.related_model, value)
    if model_field.flatchoices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(model_field, models.DateTimeField) and isinstance(value, str):
        try:  # row_to_json's ISO text, shown like the time column (UTC)
            return datetime.fromisoformat(value).astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


# --- permission changes: links between two objects, said in words ------------------------------

# Event models of billing_backoffice.models -> (the linked object, the group): a row added is
# "user alice added to group Finance staff", a row deleted "... removed from ...".
_LINKS = {
    "billing_backoffice.usergroupmembership": ("user", "group"),
    "billing_backoffice.grouppermissiongrant": ("permission", "group"),
}


def _link_names_sql(model: type[models.Model], table: str) -> str:
    """SQL for the names of the objects a permission-change event (and its previous event)
    links, as JSON ``{"user:5": "alice", "group:2": "Finance staff"}``; ``NULL`` for other
    models. Part of the page's one query, so the page stays one query whatever it shows. A
    user, group or permission deleted since has no name (shown by its id)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    if model._meta.label_lower not in _LINKS:
        return "NULL::text"
    quote = connection.ops.quote_name
    user_model = get_user_model()
    username = quote(user_model._meta.get_field(user_model.USERNAME_FIELD).column)
    named = {  # related model -> SELECT id, name of those rows
        user_model: f"SELECT r.id, r.{username}::text AS name FROM {quote(user_model._meta.db_table)} r",
        Group: f"SELECT r.id, r.name::text AS name FROM {quote(Group._meta.db_table)} r",
        Permission: f"SELECT r.id, (t.app_label || '.' || r.codename)::text AS name"
        f" FROM {quote(Permission._meta.db_table)} r"
        f" JOIN {quote(ContentType._meta.db_table)} t ON t.id = r.content_type_id",
    }
    parts = []
    for name in _LINKS[model._meta.label_lower]:
        column = quote(model._meta.get_field(name).column)
        related = model._meta.get_field(name).related_model
        previous = (f"(SELECT p.{column} FROM {table} p WHERE p.pgh_obj_id = c.pgh_obj_id"
                    f" AND p.pgh_id < c.pgh_id ORDER BY p.pgh_id DESC LIMIT 1)")
        parts.append(f"SELECT '{name}:' || x.id AS key, x.name FROM ({named[related]}) x"
                     f" WHERE x.id IN (c.{column}, {previous})")
    return f"(SELECT json_object_agg(n.key, n.name)::text FROM ({' UNION ALL '.join(parts)}) n)"


def _describe_permission_links(rows: list[AuditRow]) -> None:
    """Say what a permission-change event did: who was added to or removed from which group,
    which permission a group gained or lost (instead of "user: — -> #5"); no query."""
    links = [row for row in rows if row.model._meta.label_lower in _LINKS]

    def shown(row: AuditRow, state: dict[str, Any]) -> list[tuple[str, str]]:
        # [(field, name), (field, name)]: the linked object, then the group
        pairs = []
        for name in _LINKS[row.model._meta.label_lower]:
            value = state.get(row.model._meta.get_field(name).column)
            pairs.append((name, row.names.get(f"{name}:{value}", f"#{value}")))
        return pairs

    for row in links:
        after = shown(row, row.data)
        member, group = (f"{name} {value}" for name, value in after)
        if row.label == "insert":
            row.note, row.changes = f"{member} added to {group}", []
        elif row.label == "delete":
            row.note, row.changes = f"{member} removed from {group}", []
        elif row.label == BASELINE_LABEL:
            row.note, row.changes = f"{member} in {group} (state when the audit trail began)", []
        else:  # a link row rewritten in place (raw SQL): before and after, by name
            before = shown(row, row.previous) if row.previous else [(n, EMPTY) for n, _ in after]
            row.note = f"now: {member} in {group}"
            row.changes = [Change(name, old, new) for (name, old), (_, new) in zip(before, after) if old != new]


def object_history_rows(model: type[models.Model], object_id: Any) -> list[AuditRow]:
    """An object's events, newest first (at most ``HISTORY_LIMIT``)."""
    return audit_rows(models_=[model], object_id=object_id, limit=HISTORY_LIMIT)


# --- the audit log ----------------------------------------------------------------------------


def _model_choices() -> list[tuple[str, str]]:
    return [("", "All models")] + [
        (m._meta.label_lower, f"{m._meta.app_config.verbose_name}: {m._meta.verbose_name}")
        for m in audited_models()
    ]


class AuditLogFilterForm(forms.Form):
    model = forms.ChoiceField(required=False, choices=_model_choices)
    label = forms.ChoiceField(
        required=False,
        choices=[("", "Any change"), ("insert", "insert"), ("update", "update"), ("delete", "delete"),
                 (BASELINE_LABEL, BASELINE_LABEL)],
    )
    actor = forms.CharField(
        required=False, max_length=150, help_text="Exact: a username, task:<name> or command:<name>."
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=19, label="Object id")
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_q(self) -> int | None:
        term = self.cleaned_data["q"].strip()
        if not term:
            return None
        if not term.isdigit() or int(term) > MAX_ID:
            raise ValidationError("Search by the object's id (digits).")
        return int(term)

    def clean_before(self) -> Cursor | None:
        text = self.cleaned_data["before"]
        return Cursor.parse(text) if text else None

    def query(self) -> dict[str, Any]:
        data = self.cleaned_data
        day = lambda d: datetime.combine(d, time.min, tzinfo=dt_timezone.utc)  # noqa: E731
        chosen = [m for m in audited_models() if m._meta.label_lower == data["model"]] if data["model"] else None
        return dict(
            models_=chosen,
            object_id=data["q"],
            actor=data["actor"].strip(),
            label=data["label"],
            since=day(data["since"]) if data["since"] else None,
            until=day(data["until"]) + timedelta(days=1) if data["until"] else None,
            cursor=data["before"],
        )


class AuditLogAdmin(admin.ModelAdmin):
    """The audit log: pghistory's ``Events`` model stands for it in the admin (URL and the
    ``view_events`` permission); the page itself is the bounded query above."""

    def has_view_permission(self, request, obj=None) -> bool:
        user = request.user
        return user.is_active and user.is_staff and user.has_perm(AUDIT_LOG_PERMISSION)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [path("", self.admin_site.admin_view(self.changelist_view), name="%s_%s_changelist" % info)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AuditLogFilterForm(request.GET or None)
        rows: list[AuditRow] = []
        if form.is_bound and form.is_valid():
            rows = audit_rows(**form.query(), limit=PAGE_SIZE + 1)
        elif not form.is_bound:
            rows = audit_rows(limit=PAGE_SIZE + 1)
        older = ""
        if len(rows) > PAGE_SIZE:
            rows = rows[:PAGE_SIZE]
            params = {k: v for k, v in request.GET.items() if k != "before"}
            older = "?" + urlencode({**params, "before": rows[-1].cursor})
        context = {
            **self.admin_site.each_context(request),
            "title": "Audit log",
            "opts": self.opts,
            "form": form,
            "rows": rows,
            "older_url": older,
            "first_page": not request.GET.get("before"),
            "show_model": True,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/audit/audit_log.html", context)


admin.site.register(Events, AuditLogAdmin)


# --- "History" of each audited object ----------------------------------------------------------


def _audited_history_view(model_admin):
    original = model_admin.history_view
    model = model_admin.model

    def history_view(request, object_id, extra_context=None):
        pk = unquote(object_id)

        def rows():  # evaluated by the template, i.e. only once the permission check passed
            try:
                return object_history_rows(model, model._meta.pk.to_python(pk))
            except ValidationError:
                return []

        log_url = ""
        if request.user.has_perm(AUDIT_LOG_PERMISSION):
            log_url = reverse("admin:pghistory_events_changelist") + "?" + urlencode(
                {"model": model._meta.label_lower, "q": pk}
            )
        context = {"audit_rows": rows, "audit_log_url": log_url, "audit_limit": HISTORY_LIMIT}
        return original(request, object_id, extra_context={**context, **(extra_context or {})})

    return history_view


def install_object_history(site) -> None:
    """Point the History page of every audited model's admin at its events. Idempotent."""
    for model, model_admin in site._registry.items():
        if event_model_for(model) is None or getattr(model_admin, "_audit_history", False):
            continue
        model_admin.history_view = _audited_history_view(model_admin)
        model_admin.object_history_template = "admin/audit/object_history.html"
        model_admin._audit_history = True


def _install_when_urls_are_built(site) -> None:
    # The admin binds each ``history_view`` when it builds its URLs, after every app's admin
    # module registered its models (this module is imported before remittances' admin).
    build_urls = site.get_urls

    def get_urls():
        install_object_history(site)
        return build_urls()

    site.get_urls = get_urls


_install_when_urls_are_built(admin.site)
