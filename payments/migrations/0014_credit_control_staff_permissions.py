"""What each staff role may do with credit control and notifications (SEC-3, CC-2, CC-3, NOTIFY-2).

Both roles see reminders, holds, pauses and notifications. Account managers pause and resume
reminders (CC-3); finance staff lift a credit hold early (CC-2). Both may send a failed e-mail
again.
"""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

VIEW = ["view_reminder", "view_credithold", "view_reminderpause", "view_notification"]
ROLES = {
    "Account managers": [*VIEW, "pause_reminders", "retry_notification"],
    "Finance staff": [*VIEW, "lift_credithold", "retry_notification"],
}


class Migration(migrations.Migration):
    dependencies = [("payments", "0013_credit_control_notifications")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "payments", ROLES),
            lambda apps, schema_editor: revoke(apps, "payments", ROLES),
        )
    ]
