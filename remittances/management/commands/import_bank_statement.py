"""``manage.py import_bank_statement FILE [--format auto|camt053|camt054|mt940] [--json]``.

Contract (DESIGN.md): imports one statement file through ``statements.statement_import``
(REM-1, REM-2, REM-4..7). With ``--json`` stdout is exactly one JSON object: the summary
(``entries``, ``credited``, ``unmatched``, ``duplicates``, ``rejected`` and more), or, when the file
is refused, ``{"error": ..., "code": ..., "rule": ...}``. A refused file exits non-zero with the
reason on stderr and changes nothing. The size limit is checked on the file before it is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing_backoffice.audit import command_audit
from billing_backoffice.errors import BillingError
from remittances.parsers import AUTO, FORMATS, check_size
from remittances.services.statements import statement_import


class Command(BaseCommand):
    help = "Import a bank statement (camt.053, camt.054 or MT940); all-or-nothing, duplicates counted."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the statement file.")
        parser.add_argument("--format", dest="fmt", default=AUTO, choices=[AUTO, *FORMATS])
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object (summary or error).")

    @command_audit  # its writes carry actor command:<name> (SEC-2)
    def handle(self, *args, file: str, fmt: str, as_json: bool, **options):
        try:
            data = self._read(Path(file))
            summary = statement_import(data=data, file_name=Path(file).name, fmt=fmt, actor=None, now=timezone.now())
        except BillingError as error:
            self._refuse(error.as_dict() | {"error": error.detail}, str(error), as_json)
        except OSError as error:
            self._refuse({"error": f"Cannot read {file}: {error.strerror}", "code": "file_unreadable", "rule": None},
                         f"Cannot read {file}: {error.strerror}", as_json)
        figures = summary.as_dict()
        if as_json:
            self.stdout.write(_json_dumps(figures))
            return
        self.stdout.write(
            f"Imported {file} ({summary.format}, {summary.statements} statement(s), "
            f"{summary.new_statements} new): {summary.entries} entries, {summary.credited} credited, "
            f"{summary.unmatched} unmatched, {summary.duplicates} duplicates, {summary.rejected} rejected "
            f"(not creditable), {summary.review} for review."
        )

    @staticmethod
    def _read(path: Path) -> bytes:
        check_size(path.stat().st_size)  # before the file is read into memory
        return path.read_bytes()

    def _refuse(self, payload: dict, message: str, as_json: bool):
        if as_json:
            self.stdout.write(_json_dumps(payload))
        raise CommandError(f"Statement refused, nothing imported: {message}")


def _json_dumps(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, default=str)
