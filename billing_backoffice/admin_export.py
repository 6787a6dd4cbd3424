"""Streamed CSV and XLSX exports of the admin's lists (issue 10), through django-import-export.

import-export's own export builds the whole file as a ``tablib.Dataset`` in memory, one model
instance and one widget call per cell. Here its export page stays (the format chooser, CSV by
default; the resource's field selection; its permission setting) and only the file is made
differently:

- The rows are the changelist's queryset (its filters and search, as the Export button carries
  them), read as ``values_list`` of the resource's value paths (``account__uid``): joins, never a
  query per row. The queryset is read in chunks of ``CHUNK_SIZE``: by primary key ranges (keyset)
  when the list is in id order, as every exporting list is by default, so one query per chunk
  with or without server-side cursors (production disables them behind PgBouncer); any other
  ordering through ``.iterator(chunk_size=...)``.
- CSV and XLSX are ``StreamingHttpResponse``s, one chunk of rows at a time (XLSX through
  ``xlsx_stream``: the sheet written into a zip stream, no whole file in memory or on disk), so
  the first bytes leave at once and memory stays one chunk of rows whatever the list's length.
- Cells: amounts as plain decimals (the currency is a column of its own), choice codes as their
  labels, dates ``YYYY-MM-DD HH:MM:SS`` (UTC) in CSV and real dates in XLSX, booleans yes/no, and
  every text cell that a spreadsheet would run as a formula prefixed with ``'``
  (``neutralise_formula``, as ``FormulaSafeResource``).
- A resource's columns are import-export fields: model fields by name, or ``Column(name, *paths,
  convert=...)`` for related values and words; ``Resource().export()`` gives the same cells.
- Exports need import-export's export permission (``IMPORT_EXPORT_EXPORT_PERMISSION_CODE``, when
  set) and, always, the view permission of the model: the lists' rows name customers.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from itertools import islice

from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import StreamingHttpResponse
from django.utils import timezone
from import_export import fields
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, XLSX
from import_export.forms import SelectableFieldsExportForm
from import_export.signals import post_export

from billing_backoffice.admin_site import FormulaSafeResource, neutralise_formula
from billing_backoffice.xlsx_stream import xlsx_stream

CHUNK_SIZE = 2000
PK_ORDERINGS = {("-id",): True, ("-pk",): True, ("id",): False, ("pk",): False}


# --- columns and cells ------------------------------------------------------------------------------


class Column(fields.Field):
    """An export column read from one or more value paths (``"account__uid"``), turned into its
    cell by ``convert(*values)``; without ``convert``, the model field's own words (choices)."""

    def __init__(self, column_name: str, *paths: str, convert=None):
        super().__init__(attribute=paths[0], column_name=column_name, readonly=True)
        self.paths = paths
        self.convert = convert


def yes_no(value):
    return "" if value is None else ("yes" if value else "no")


def _model_field(model, path: str):
    """The model field at the end of ``path`` (following relations), or None (an annotation)."""
    field = None
    for part in path.split("__"):
        if model is None:
            return None
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return None
        model = field.related_model if field.is_relation else None
    return field


def _words_of(field):
    """What the screens show for a stored value: a choice's label, a boolean as yes/no."""
    if field is None:
        return None
    if field.choices and not field.is_relation:
        labels = {key: str(label) for key, label in field.flatchoices}
        return lambda value: labels.get(value, value)
    if field.get_internal_type() in ("BooleanField", "NullBooleanField"):
        return yes_no
    return None


def csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if timezone.is_aware(value) else str(value)
    if isinstance(value, (Decimal, int, date)):
        return str(value)
    return neutralise_formula(str(value))


def xlsx_cell(value):
    if value is None or isinstance(value, (Decimal, int, date)) and not isinstance(value, (bool, datetime)):
        return value
    if isinstance(value, datetime):
        return timezone.make_naive(value) if timezone.is_aware(value) else value
    if isinstance(value, bool):
        return yes_no(value)
    return neutralise_formula(str(value))  # xlsx_stream drops the characters XML cannot hold


class CellPlan:
    """The selected columns of a resource: their headers, the value paths to read and, per
    column, where its values are in a row of those paths and how they become the cell."""

    def __init__(self, resource, selected_fields=None):
        model = resource._meta.model
        self.headers, self.columns, paths = [], [], {}
        for field in resource.get_export_fields(selected_fields):
            own = tuple(getattr(field, "paths", ())) or (field.attribute,)
            instance_paths = tuple(_instance_path(model, p) for p in own)
            slots = tuple(paths.setdefault(p, len(paths)) for p in own)
            convert = getattr(field, "convert", None) or _words_of(_model_field(model, own[0]))
            self.headers.append(str(field.column_name))
            self.columns.append((slots, instance_paths, convert))
        self.paths = list(paths)

    def cells(self, values, cell) -> list:
        """One row's cells from its ``values`` (in ``self.paths`` order)."""
        return [cell(self._value([values[i] for i in slots], convert)) for slots, _, convert in self.columns]

    def cells_of(self, instance, cell) -> list:
        """One row's cells read from a model instance (import-export's own ``export()``)."""
        return [cell(self.column_of(instance, index)) for index in range(len(self.columns))]

    def column_of(self, instance, index: int):
        _, instance_paths, convert = self.columns[index]
        return self._value([_follow(instance, p) for p in instance_paths], convert)

    @staticmethod
    def _value(values, convert):
        if convert is None:
            return values[0]
        if len(values) == 1 and values[0] in (None, ""):
            return values[0]
        return convert(*values)


def _instance_path(model, path: str) -> str:
    """``values_list("account")`` gives the account's id; read from an instance it is ``account_id``."""
    field = _model_field(model, path)
    if field is not None and field.is_relation and field.concrete:
        return "__".join([*path.split("__")[:-1], field.attname])
    return path


def _follow(instance, path: str):
    for part in path.split("__"):
        if instance is None:
            return None
        instance = getattr(instance, part)
    return instance


class StreamedResource(FormulaSafeResource):
    """A resource whose cells come from ``CellPlan`` (value paths, words, formula-safe text), for
    the admin's streamed files and for import-export's own ``export()`` alike."""

    def export_field(self, field, instance, **kwargs):
        plan = CellPlan(self, [self.get_field_name(field)])
        cell = xlsx_cell if kwargs.get("force_native_type") else csv_cell
        return cell(plan.column_of(instance, 0))


# --- reading the rows -------------------------------------------------------------------------------


def value_chunks(queryset, paths: list[str], size: int = CHUNK_SIZE):
    """Lists of ``values_list(*paths)`` rows, ``size`` at a time, in the queryset's order: one
    query per chunk by primary key ranges in id order, else a chunked iterator."""
    queryset = queryset.prefetch_related(None)
    descending = PK_ORDERINGS.get(tuple(queryset.query.order_by))
    if descending is None or queryset.query.is_sliced:
        rows = queryset.values_list(*paths).iterator(chunk_size=size)
        while chunk := list(islice(rows, size)):
            yield chunk
        return
    keyed, last = queryset.values_list("pk", *paths), None
    while True:
        page = keyed if last is None else keyed.filter(**{"pk__lt" if descending else "pk__gt": last})
        chunk = list(page[:size])
        if not chunk:
            return
        yield [row[1:] for row in chunk]
        if len(chunk) < size:
            return
        last = chunk[-1][0]


class _Echo:
    """A file that gives back what csv.writer writes to it."""

    def write(self, text):
        return text


def csv_lines(plan: CellPlan, queryset, size: int = CHUNK_SIZE):
    writer = csv.writer(_Echo())
    yield writer.writerow(plan.headers)
    for chunk in value_chunks(queryset, plan.paths, size):
        yield "".join(writer.writerow(plan.cells(values, csv_cell)) for values in chunk)


def xlsx_chunks(plan: CellPlan, queryset, size: int = CHUNK_SIZE):
    """The rows' XLSX cell values, a chunk at a time, for ``xlsx_stream``."""
    for chunk in value_chunks(queryset, plan.paths, size):
        yield [plan.cells(values, xlsx_cell) for values in chunk]


# --- the admin ----------------------------------------------------------------------------------------


class DefaultFormatExportForm(SelectableFieldsExportForm):
    """The format chooser starts on the first format (CSV), without an empty choice."""

    def _init_formats(self, formats):
        super()._init_formats(formats)
        field = self.fields["format"]
        field.choices = [choice for choice in field.choices if choice[0] != ""]
        field.initial = "0"


class StreamedExportMixin(ExportMixin):
    """The Export button and page of a changelist, with the file streamed (see the module)."""

    export_form_class = DefaultFormatExportForm
    export_formats = [CSV, XLSX]
    export_chunk_size = CHUNK_SIZE

    def has_export_permission(self, request) -> bool:
        return super().has_export_permission(request) and self.has_view_permission(request)

    def _do_file_export(self, file_format, request, queryset, export_form=None):
        if not self.has_export_permission(request):
            raise PermissionDenied
        resource_class = self.choose_export_resource_class(export_form, request)
        resource = resource_class(**self.get_export_resource_kwargs(request))
        plan = CellPlan(resource, self.get_export_resource_fields_from_form(export_form))
        filename = self.get_export_filename(request, queryset, file_format)
        if isinstance(file_format, XLSX):
            title = str(self.model._meta.verbose_name_plural)
            response = StreamingHttpResponse(
                xlsx_stream(plan.headers, xlsx_chunks(plan, queryset, self.export_chunk_size), title=title),
                content_type=file_format.get_content_type(),
            )
        else:
            response = StreamingHttpResponse(
                csv_lines(plan, queryset, self.export_chunk_size), content_type="text/csv; charset=utf-8",
            )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        post_export.send(sender=None, model=self.model)
        return response
