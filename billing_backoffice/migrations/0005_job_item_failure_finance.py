"""Finance staff see the items the batch jobs could not process and can ask for a retry (SEC-3):
a poison account, bill or statement file is theirs to look into. Account managers get nothing
here (the rows name bills and balances of every customer, not only theirs)."""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {"Finance staff": ["view_jobitemfailure", "retry_jobitemfailure"]}


class Migration(migrations.Migration):
    dependencies = [
        ("billing_backoffice", "0004_job_item_failure"),
        ("payments", "0002_staff_groups"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "billing_backoffice", ROLES),
            lambda apps, schema_editor: revoke(apps, "billing_backoffice", ROLES),
        )
    ]
