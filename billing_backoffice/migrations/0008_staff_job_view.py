"""Every staff role sees its own jobs ("Recent jobs", the progress pages): ``view_staffjob``. The
admin shows each user only the jobs they started (``staff_jobs.jobs_of``), so the permission
reveals nobody else's work."""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {name: ["view_staffjob"] for name in ("Account managers", "Finance staff", "Auditors")}


class Migration(migrations.Migration):
    dependencies = [
        ("billing_backoffice", "0007_staff_job"),
        ("payments", "0005_audit"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "billing_backoffice", ROLES),
            lambda apps, schema_editor: revoke(apps, "billing_backoffice", ROLES),
        )
    ]
