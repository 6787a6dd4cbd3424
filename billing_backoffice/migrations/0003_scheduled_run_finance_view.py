"""Finance staff see the scheduled runs (SEC-3): whether the month-end bills, the deduction and
the settlement sweep ran in a window, and a run that died (lease expired). Read-only for all."""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {"Finance staff": ["view_scheduledrun"]}


class Migration(migrations.Migration):
    dependencies = [
        ("billing_backoffice", "0002_scheduled_run"),
        ("payments", "0002_staff_groups"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "billing_backoffice", ROLES),
            lambda apps, schema_editor: revoke(apps, "billing_backoffice", ROLES),
        )
    ]
