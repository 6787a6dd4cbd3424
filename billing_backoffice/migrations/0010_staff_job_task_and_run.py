# Staff jobs name the task that runs them (the sweep for lost messages sends it again) and the
# task message whose run holds them. Unfinished jobs recorded before get their task from their
# kind: a statement import, or else a bulk action (the only two kinds of job).

from django.conf import settings
from django.db import migrations, models


def name_the_tasks_of_unfinished_jobs(apps, schema_editor):
    jobs = apps.get_model("billing_backoffice", "StaffJob").objects.filter(state__in=("queued", "running"), task="")
    jobs.filter(kind="remittances.statement_import").update(task="remittances.import_uploaded_statement")
    jobs.exclude(kind="remittances.statement_import").update(task="billing_backoffice.run_bulk_action")


class Migration(migrations.Migration):

    dependencies = [
        ('billing_backoffice', '0009_scheduled_job'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='staffjob',
            name='run_id',
            field=models.CharField(blank=True, help_text='The task message whose run holds the job: its redelivery may take the job over, another message may not.', max_length=64),
        ),
        migrations.AddField(
            model_name='staffjob',
            name='task',
            field=models.CharField(blank=True, help_text='The Celery task that runs the job (sent again if its message is lost).', max_length=100),
        ),
        migrations.AddIndex(
            model_name='staffjob',
            index=models.Index(condition=models.Q(('state__in', ('queued', 'running'))), fields=['created_at'], name='staff_job_unfinished'),
        ),
        migrations.RunPython(name_the_tasks_of_unfinished_jobs, migrations.RunPython.noop),
    ]
