"""Staff jobs whose task message was lost are sent again, and a second message never runs a job
twice (``staff_jobs.jobs_resend_lost``, ``staff_jobs.job_start``; I2: nothing is done twice).

A message is lost when the broker is down as the page commits (the page answers an error, the
job row stays "queued": without the sweep it would wait for a worker forever) or when a whole
worker dies holding it. The statement upload is the end-to-end case: finance's file is imported
once, by the resent message, and every later message for it does nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing_backoffice.models import StaffJob
from billing_backoffice.staff_jobs import BULK_TASK, RESEND_QUEUED_AFTER, job_run_limit, job_start, jobs_resend_lost
from remittances.models import BankStatement
from remittances.services.statement_uploads import TASK as UPLOAD_TASK
from remittances.services.statement_uploads import statement_upload_run, statement_upload_start
from tests.factories import StaffJobFactory
from tests.helpers.roles import in_group
from tests.helpers.statements import ledger_total, sample
from tests.remittances.samples import build

pytestmark = pytest.mark.django_db
State = StaffJob.State


def test_i2_a_job_queued_past_ten_minutes_or_running_past_the_time_limit_is_sent_again(
    now, sent, django_capture_on_commit_callbacks
):
    lost = StaffJobFactory(task=BULK_TASK, created_at=now - RESEND_QUEUED_AFTER - timedelta(seconds=1))
    StaffJobFactory(task=BULK_TASK, created_at=now - RESEND_QUEUED_AFTER + timedelta(seconds=30))  # still young
    dead_run = StaffJobFactory(task=UPLOAD_TASK, state=State.RUNNING, created_at=now - timedelta(hours=1),
                               started_at=now - job_run_limit() - timedelta(seconds=1))
    StaffJobFactory(task=BULK_TASK, state=State.RUNNING, created_at=now - timedelta(hours=1),
                    started_at=now - timedelta(minutes=1))  # a live run
    StaffJobFactory(task=BULK_TASK, state=State.DONE, created_at=now - timedelta(days=1), finished_at=now)
    StaffJobFactory(task="", created_at=now - timedelta(days=1))  # no task named: nothing to send

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_resend_lost(now=now) == 2
    assert sorted(sent) == sorted([(BULK_TASK, {"job_id": lost.pk}), (UPLOAD_TASK, {"job_id": dead_run.pk})])


def test_i2_one_job_that_cannot_be_sent_never_stops_the_others(now, sent, django_capture_on_commit_callbacks):
    old = now - timedelta(hours=1)
    StaffJobFactory(task="no.such.task", created_at=old - timedelta(minutes=1))  # sent first, and fails
    other = StaffJobFactory(task=BULK_TASK, created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_resend_lost(now=now) == 1
    assert sent == [(BULK_TASK, {"job_id": other.pk})]


def test_i2_only_the_message_that_runs_a_job_or_its_redelivery_holds_it(now):
    job = StaffJobFactory(task=BULK_TASK, created_at=now)
    assert job_start(job.pk, now=now, run_id="first") is not None
    assert job_start(job.pk, now=now, run_id="resent") is None  # a second message: nothing twice
    assert job_start(job.pk, now=now, run_id="") is None
    assert job_start(job.pk, now=now, run_id="first") is not None  # its redelivery: the worker died
    later = now + job_run_limit() + timedelta(seconds=1)
    assert job_start(job.pk, now=later, run_id="resent") is not None  # nothing runs that long: taken over
    assert StaffJob.objects.get(pk=job.pk).run_id == "resent"


def test_rem_4_an_upload_whose_message_was_lost_is_imported_once_by_the_sweep(
    now, dedicated, customer, eager_tasks, django_capture_on_commit_callbacks
):
    finance = in_group("Finance staff", "finance-lost-message")
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down: nothing was sent
        job = statement_upload_start(
            upload=SimpleUploadedFile("camt053_v08.xml", sample("camt053_v08.xml")), actor=finance, now=now,
        )
    assert jobs_resend_lost(now=now + timedelta(minutes=5)) == 0  # may still be on its way
    assert not BankStatement.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_resend_lost(now=now + RESEND_QUEUED_AFTER + timedelta(seconds=1)) == 1  # runs (eager)
    job.refresh_from_db()
    assert job.state == State.DONE and dict(job.summary["figures"])["Credited"] == 7
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    # The original message turning up after all, and the next sweeps, do nothing.
    assert statement_upload_run(job_id=job.pk, now=now + timedelta(hours=1), run_id="original") is None
    assert jobs_resend_lost(now=now + timedelta(hours=1)) == 0
    assert BankStatement.objects.count() == 1 and ledger_total(customer) == build.STANDARD_CREDITABLE
