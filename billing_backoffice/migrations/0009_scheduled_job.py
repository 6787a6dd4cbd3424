"""Scheduled jobs (issue 10, finance's "scheduled jobs that failed or are late"): one row per job
of the beat schedule with its last success, so a job whose window never fired is still a row.

The rows of the jobs beat already knows (django-celery-beat's periodic tasks) are installed here,
their interval counted from now; ``sync_beat_schedule`` installs those of later entries. Finance
staff see them (SEC-3), read-only like the scheduled runs."""

from django.db import migrations, models
from django.utils import timezone

from billing_backoffice.staff_roles import grant, revoke

ROLES = {"Finance staff": ["view_scheduledjob"]}


def install_known_jobs(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    ScheduledJob = apps.get_model("billing_backoffice", "ScheduledJob")
    now = timezone.now()
    tasks = sorted(set(PeriodicTask.objects.values_list("task", flat=True)))
    ScheduledJob.objects.bulk_create(
        [ScheduledJob(job=task, created_at=now) for task in tasks if task], ignore_conflicts=True
    )


class Migration(migrations.Migration):

    dependencies = [
        ("billing_backoffice", "0008_staff_job_view"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("payments", "0005_audit"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScheduledJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job", models.CharField(help_text="The task's name, e.g. payments.settlement_sweep.", max_length=100, unique=True)),
                ("created_at", models.DateTimeField(help_text="When the job was installed: the start of its first interval.")),
                ("last_success_at", models.DateTimeField(blank=True, help_text="When the task last succeeded (a firing skipped by its window's run counts).", null=True)),
            ],
            options={
                "verbose_name": "scheduled job",
                "verbose_name_plural": "scheduled jobs",
            },
        ),
        migrations.RunPython(install_known_jobs, migrations.RunPython.noop),
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "billing_backoffice", ROLES),
            lambda apps, schema_editor: revoke(apps, "billing_backoffice", ROLES),
        ),
    ]
