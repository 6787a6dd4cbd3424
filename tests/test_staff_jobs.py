"""Staff jobs (issue 10, "Long work shows progress"): the progress endpoint and page, who may see a
job, and bulk admin actions over many rows run as a job (``billing_backoffice/staff_jobs.py``,
``billing_backoffice/staff_jobs_admin.py``). The statement upload's job is tested in
``tests/remittances/test_statement_upload_progress.py``."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from billing_backoffice.errors import BillingError
from billing_backoffice.item_failures_admin import RETRY_JOB
from billing_backoffice.models import JobItemFailure, StaffJob
from billing_backoffice.staff_jobs import (
    BULK_ACTIONS,
    BULK_TASK,
    JOB_THRESHOLD,
    bulk_action,
    bulk_action_run,
    bulk_action_start,
    job_start,
)
from tests.factories import JobItemFailureFactory, StaffJobFactory, UserFactory
from tests.helpers.admin import messages_of
from tests.helpers.roles import in_group

pytestmark = pytest.mark.django_db


def login_owner(client, job):
    """The job's actor, with the view_staffjob permission every staff role holds (migration 0008)."""
    from django.contrib.auth.models import Permission

    job.actor.user_permissions.add(Permission.objects.get(codename="view_staffjob"))
    client.force_login(job.actor)


def status_url(job) -> str:
    return reverse("admin:billing_backoffice_staffjob_status", args=[job.pk])


def progress_url(job) -> str:
    return reverse("admin:billing_backoffice_staffjob_progress", args=[job.pk])


# --- the progress endpoint and page --------------------------------------------------------------


def test_progress_endpoint_reports_done_of_total_while_running(client, now):
    job = StaffJobFactory(state=StaffJob.State.RUNNING, total=40, done=10, started_at=now)
    login_owner(client, job)
    status = client.get(status_url(job)).json()
    assert (status["state"], status["done"], status["total"], status["percent"]) == ("running", 10, 40, 25)
    assert status["finished"] is False and status["text"] == "10 of 40 done."
    page = client.get(progress_url(job)).content.decode()
    # the bar, its text for screen readers, and the script that polls the endpoint (a static file)
    assert '<progress id="job-bar" max="40" value="10">' in page and 'role="status"' in page
    assert "billing_backoffice/job_progress.js" in page and status_url(job) in page
    assert 'id="job-summary"' not in page


def test_progress_endpoint_reports_the_final_summary_and_the_page_shows_it_without_script(client, now):
    summary = {"figures": [["Done", 28], ["Refused", 2]], "notes": ["Hold 7: HOLD-2: already released"], "message": "Released 28."}
    job = StaffJobFactory(state=StaffJob.State.DONE, total=30, done=30, summary=summary, started_at=now, finished_at=now)
    login_owner(client, job)
    status = client.get(status_url(job)).json()
    assert status["finished"] is True and status["percent"] == 100 and status["summary"]["figures"][0] == ["Done", 28]
    page = client.get(progress_url(job)).content.decode()
    assert 'id="job-summary"' in page and '<th scope="row">Refused</th><td>2</td>' in page
    assert "HOLD-2: already released" in page and "job_progress.js" not in page


def test_a_failed_job_shows_its_error(client, now):
    job = StaffJobFactory(state=StaffJob.State.FAILED, error="REM-5: does not reconcile", finished_at=now)
    login_owner(client, job)
    assert client.get(status_url(job)).json()["error"] == "REM-5: does not reconcile"
    assert 'id="job-error"' in client.get(progress_url(job)).content.decode()


def test_sec_3_others_jobs_are_refused_and_not_listed(client, now):
    mine, theirs = StaffJobFactory(title="Mine"), StaffJobFactory(title="Theirs")
    login_owner(client, mine)
    assert client.get(status_url(mine)).status_code == 200
    assert client.get(status_url(theirs)).status_code == 404  # not even said to exist
    assert client.get(progress_url(theirs)).status_code == 404
    listing = client.get(reverse("admin:billing_backoffice_staffjob_changelist"))
    assert listing.status_code == 200
    assert [job.pk for job in listing.context["cl"].result_list] == [mine.pk]
    # a superuser sees everyone's jobs
    client.force_login(UserFactory(username="root-jobs", is_superuser=True))
    assert client.get(status_url(theirs)).status_code == 200


def test_sec_3_the_endpoint_needs_a_staff_login(client):
    job = StaffJobFactory()
    response = client.get(status_url(job))
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(UserFactory(username="customer-jobs", is_staff=False))
    assert client.get(status_url(job)).status_code != 200


def test_every_admin_page_links_recent_jobs(client):
    user = in_group("Account managers", "staff-jobs-link")
    client.force_login(user)
    page = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("admin:billing_backoffice_staffjob_changelist")}">Recent jobs' in page


def test_the_job_tasks_have_their_queues():
    routes = settings.CELERY_TASK_ROUTES
    assert routes[BULK_TASK] == {"queue": "bulk"}
    assert routes["remittances.import_uploaded_statement"] == {"queue": "money"}


# --- bulk actions over many rows -----------------------------------------------------------------


def retry_post(client, failures):
    changelist = reverse("admin:billing_backoffice_jobitemfailure_changelist")
    return client.post(changelist, {"action": "retry_selected", "_selected_action": [f.pk for f in failures]}, follow=True)


def test_a_bulk_action_over_the_threshold_runs_as_a_job_with_progress(client, now, sent, django_capture_on_commit_callbacks):
    finance = in_group("Finance staff", "finance-bulk")
    failures = JobItemFailureFactory.create_batch(JOB_THRESHOLD + 5, given_up_at=now, next_retry_at=None)
    client.force_login(finance)
    with django_capture_on_commit_callbacks(execute=True):
        response = retry_post(client, failures)
    job = StaffJob.objects.get()
    assert (job.kind, job.actor, job.total, job.state) == (RETRY_JOB.name, finance, len(failures), "queued")
    assert sent == [(BULK_TASK, {"job_id": job.pk})]  # sent by name, after the commit
    assert progress_url(job) in response.content.decode()  # the message links the progress page
    assert not JobItemFailure.objects.filter(retried_by=finance).exists()  # nothing done in the request

    from billing_backoffice.tasks import run_bulk_action

    run_bulk_action.run(job_id=job.pk)  # what the worker runs
    job.refresh_from_db()
    assert (job.state, job.done, job.total) == ("done", len(failures), len(failures))
    assert job.summary["figures"][0] == ["Done", len(failures)]
    assert JobItemFailure.objects.filter(retried_by=finance, given_up_at__isnull=True).count() == len(failures)
    assert client.get(status_url(job)).json()["summary"]["message"].startswith(f"{len(failures)} item(s)")


def test_a_bulk_action_at_the_threshold_runs_in_the_request(client, now, sent):
    finance = in_group("Finance staff", "finance-small")
    failures = JobItemFailureFactory.create_batch(2, given_up_at=now, next_retry_at=None)
    client.force_login(finance)
    response = retry_post(client, failures)
    assert not StaffJob.objects.exists() and sent == []
    assert any("will be retried" in m for m in messages_of(response))
    assert JobItemFailure.objects.filter(retried_by=finance).count() == 2


def test_a_bulk_job_records_each_refusal_with_its_rule_and_goes_on(now):
    calls = []

    def call(failure, actor, now):
        calls.append(failure.pk)
        if len(calls) == 2:
            raise BillingError("Not this one.", rule="SEC-3")
        if len(calls) == 3:
            raise RuntimeError("poison")  # an unexpected error: recorded, the job goes on
        return failure

    action = bulk_action("test.refusals", model=JobItemFailure, call=call, done_message="{count} done.")
    try:
        rows = JobItemFailureFactory.create_batch(5)
        job = bulk_action_start(action, ids=[r.pk for r in rows], actor=UserFactory(), now=now)
        bulk_action_run(job_id=job.pk, clock=lambda: now)
    finally:
        BULK_ACTIONS.pop("test.refusals")
    job.refresh_from_db()
    outcome = job.summary["outcome"]
    assert calls == [r.pk for r in rows]
    assert (outcome["done"], outcome["refused"]) == (3, 2) and job.summary["message"] == "3 done."
    assert any("SEC-3: Not this one." in note for note in outcome["notes"])
    assert any("unexpected error (RuntimeError)" in note for note in outcome["notes"])


def test_i2_a_redelivered_job_message_does_nothing_twice(now):
    calls = []
    action = bulk_action("test.twice", model=JobItemFailure, call=lambda f, a, n: calls.append(f.pk), done_message="{count}")
    try:
        job = bulk_action_start(action, ids=[JobItemFailureFactory().pk], actor=UserFactory(), now=now)
        bulk_action_run(job_id=job.pk, clock=lambda: now)
        assert bulk_action_run(job_id=job.pk, clock=lambda: now) is None
    finally:
        BULK_ACTIONS.pop("test.twice")
    assert len(calls) == 1 and job_start(job.pk, now=now) is None


def test_sec_1_a_job_error_keeps_no_card_number(now):
    from billing_backoffice.staff_jobs import job_fail

    job = StaffJobFactory()
    job_fail(job.pk, now=now, error="card 4242 4242 4242 4242 refused")
    job.refresh_from_db()
    assert "4242 4242 4242 4242" not in job.error and job.state == "failed"


def test_sec_2_a_bulk_job_writes_each_success_to_the_admin_history_with_the_reason(now):
    """Recent actions and each object's History show what a bulk job did, in its actor's name."""
    from django.contrib.admin.models import CHANGE, LogEntry

    def call(failure, actor, now):
        if failure.pk == refused.pk:
            raise BillingError("Not this one.", rule="SEC-3")
        return failure

    action = bulk_action("test.logged", model=JobItemFailure, call=call, done_message="{count} retried.")
    actor = UserFactory(username="bulk-actor")
    try:
        rows = JobItemFailureFactory.create_batch(3)
        refused = rows[1]
        job = bulk_action_start(action, ids=[r.pk for r in rows], actor=actor, now=now,
                                log_message="Retried through the admin.", reason="bank was down")
        bulk_action_run(job_id=job.pk, clock=lambda: now)
    finally:
        BULK_ACTIONS.pop("test.logged")
    entries = LogEntry.objects.filter(user=actor, action_flag=CHANGE)
    assert sorted(int(e.object_id) for e in entries) == sorted([rows[0].pk, rows[2].pk])  # not the refused one
    assert {e.change_message for e in entries} == {"Retried through the admin. Reason: bank was down"}
