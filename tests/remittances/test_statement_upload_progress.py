"""A statement upload runs as a staff job (issue 10; REM-1, REM-4, REM-5): the upload stores the file
and queues the import after the commit, the progress endpoint reports done of total and the
final summary, the statement's page links the job, and identical bytes are recognised
(``remittances/services/statement_uploads.py``)."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing_backoffice.models import StaffJob
from remittances.models import BankStatement
from remittances.services.statements import statement_import
from tests.helpers.roles import in_group
from tests.helpers.statements import ledger_total, sample
from tests.remittances.samples import build

pytestmark = pytest.mark.django_db
UPLOAD_URL = "admin:remittances_bankstatement_upload"


def upload(client, name="camt053_v08.xml"):
    return client.post(reverse(UPLOAD_URL), {"file": SimpleUploadedFile(name, sample(name)), "format": "auto"})


def test_rem_4_upload_queues_the_import_and_the_progress_endpoint_reports_the_summary(
    client, dedicated, customer, sent, django_capture_on_commit_callbacks
):
    finance = in_group("Finance staff", "finance-upload")
    client.force_login(finance)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client)
    job = StaffJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:billing_backoffice_staffjob_progress", args=[job.pk])
    assert sent == [("remittances.import_uploaded_statement", {"job_id": job.pk})]
    assert job.state == "queued" and default_storage.exists(job.params["path"]) and not BankStatement.objects.exists()
    status_url = reverse("admin:billing_backoffice_staffjob_status", args=[job.pk])
    assert client.get(status_url).json()["finished"] is False

    from remittances.tasks import import_uploaded_statement

    import_uploaded_statement.run(job_id=job.pk)  # what the worker runs
    status = client.get(status_url).json()
    assert status["state"] == "done" and status["done"] == status["total"] > 0 and status["percent"] == 100
    figures = dict(status["summary"]["figures"])
    assert figures["Credited"] == 7 and figures["Lines read"] == status["total"]
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    statement = BankStatement.objects.get()
    assert statement.summary["credited"] == 7  # the summary stays on the statement too
    page = client.get(reverse("admin:remittances_bankstatement_change", args=[statement.pk])).content.decode()
    assert reverse("admin:billing_backoffice_staffjob_progress", args=[job.pk]) in page  # found again
    assert not default_storage.exists(job.params["path"])  # the stored upload is gone once done


def test_rem_4_the_same_bytes_uploaded_again_credit_nothing_twice(
    client, dedicated, customer, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(in_group("Finance staff", "finance-twice"))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            upload(client)
    first, second = StaffJob.objects.order_by("pk")
    again = dict(second.summary["figures"])
    assert again["Credited"] == 0 and again["Duplicates (imported before)"] == again["Lines read"] > 0
    assert ledger_total(customer) == build.STANDARD_CREDITABLE


def test_rem_5_a_refused_upload_fails_its_job_with_the_rule(client, dedicated, eager_tasks, django_capture_on_commit_callbacks):
    client.force_login(in_group("Finance staff", "finance-refused"))
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, "camt053_unreconciled_v08.xml")
    job = StaffJob.objects.get()
    assert job.state == "failed" and "REM-5" in job.error and not BankStatement.objects.exists()


def test_statement_import_reports_its_line_count_before_and_after(dedicated, now):
    calls = []
    statement_import(data=sample("camt053_v08.xml"), now=now, progress=lambda done, total: calls.append((done, total)))
    total = calls[0][1]
    assert calls == [(0, total), (total, total)] and total > 0
