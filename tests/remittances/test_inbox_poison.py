"""REM-4: a malformed statement file in the inbox never stops the others (remittances/services/inbox.py,
billing_backoffice/item_failures.py): it is filed in failed/ with its reason, recorded for finance,
tried again by later runs with a backoff until given up, and imports once fixed and retried."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing_backoffice.item_failures import MAX_ATTEMPTS, job_item_failure_retry, retry_delay
from billing_backoffice.models import JobItemFailure
from remittances.services.inbox import INBOX_JOB, statement_inbox_import
from tests.remittances.samples import build
from tests.helpers.statements import ledger_total, sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(tmp_path, settings):
    settings.STATEMENT_INBOX_DIR = tmp_path / "inbox"
    settings.STATEMENT_INBOX_DIR.mkdir()
    return settings.STATEMENT_INBOX_DIR


def test_rem_4_inbox_imports_around_a_malformed_file_and_retries_it_boundedly(inbox, dedicated, shared, customer, now):
    (inbox / "1-first.xml").write_bytes(sample("camt053_v08.xml"))
    (inbox / "2-broken.xml").write_bytes(sample("camt053_truncated.xml"))
    (inbox / "3-last.sta").write_bytes(sample("mt940_shared.sta"))

    outcome = statement_inbox_import(now=now)  # does not raise
    assert [f["file"] for f in outcome["imported"]] == ["1-first.xml", "3-last.sta"]
    [refused] = outcome["failed"]
    assert refused["file"] == "2-broken.xml"
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    [failure] = JobItemFailure.objects.filter(job=INBOX_JOB)
    quarantined = inbox / "failed" / failure.item_key
    assert quarantined.is_file() and failure.item_key.endswith("--2-broken.xml") and failure.object_id is None
    assert (failure.item_kind, failure.error, failure.attempts) == ("statement_file", refused["code"], 1)
    assert failure.message and failure.message in (inbox / "failed" / f"{failure.item_key}.error.txt").read_text()

    assert statement_inbox_import(now=now + timedelta(minutes=1)) == {"imported": [], "failed": []}  # waits
    clock = now
    for attempts in range(1, MAX_ATTEMPTS):
        clock += retry_delay(attempts)
        again = statement_inbox_import(now=clock)
        assert [f["file"] for f in again["failed"]] == ["2-broken.xml"] and quarantined.is_file()
    failure.refresh_from_db()
    assert failure.attempts == MAX_ATTEMPTS and failure.given_up_at == clock
    assert statement_inbox_import(now=clock + timedelta(days=1)) == {"imported": [], "failed": []}  # given up

    # Finance gets the bank's corrected file into failed/ under the same name and retries it.
    quarantined.write_bytes(sample("camt054_v08.xml"))
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=clock + timedelta(days=1))
    fixed = statement_inbox_import(now=clock + timedelta(days=1))
    assert [f["file"] for f in fixed["imported"]] == ["2-broken.xml"]
    failure.refresh_from_db()
    assert failure.resolved_at == clock + timedelta(days=1)
    assert (inbox / "processed" / failure.item_key).is_file() and not quarantined.exists()
    assert not (inbox / "failed" / f"{failure.item_key}.error.txt").exists()


def test_rem_4_inbox_refuses_an_oversized_file_by_its_size_and_imports_the_others(
    inbox, dedicated, customer, settings, now, monkeypatch
):
    """The size limit (parsers.check_size, the one place it is checked) refuses a big file from its
    size on disk, before it is read; the next file still imports."""
    settings.STATEMENT_MAX_BYTES = 1024
    (inbox / "1-big.xml").write_bytes(sample("camt053_v08.xml"))  # 7 kB
    (inbox / "2-small.sta").write_bytes(sample("mt940_day.sta"))  # under 1 kB
    read = []
    real_read_bytes = type(inbox).read_bytes
    monkeypatch.setattr(type(inbox), "read_bytes", lambda path: read.append(path.name) or real_read_bytes(path))

    outcome = statement_inbox_import(now=now)
    [refused] = outcome["failed"]
    assert (refused["file"], refused["code"]) == ("1-big.xml", "statement_too_large")
    assert "limited to 1024 bytes" in refused["error"]
    assert [f["file"] for f in outcome["imported"]] == ["2-small.sta"]
    assert not any(name.endswith("1-big.xml") for name in read)  # refused unread
