"""What each staff role may do with credit, remittance accounts, statements and claims (SEC-3).

Account managers (DESIGN.md): record and decide credit applications (never their own: CRED-2,
enforced by the service and a constraint), issue and suspend dedicated remittance accounts and
download their Payment Request Form, work the unmatched-transactions queue, initiate claims and
review them (CLM-1).
Finance staff: see credit requests and remittance accounts, import bank statements (REM-4..7),
work the transactions queue and its exports, approve or reject reviewed claims (never one they
initiated or reviewed: CLM-3).
"""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {
    "Account managers": [
        "view_creditlimitrequest",
        "add_creditlimitrequest",
        "approve_creditlimitrequest",
        "view_remittanceaccount",
        "issue_remittanceaccount",
        "suspend_remittanceaccount",
        "view_bankstatement",
        "view_banktransaction",
        "view_remittanceclaim",
        "add_remittanceclaim",
        "review_remittanceclaim",
    ],
    "Finance staff": [
        "view_creditlimitrequest",
        "view_remittanceaccount",
        "view_bankstatement",
        "import_bankstatement",
        "view_banktransaction",
        "view_remittanceclaim",
        "approve_remittanceclaim",
    ],
}


class Migration(migrations.Migration):
    dependencies = [
        ("remittances", "0002_search_indexes"),
        ("payments", "0002_staff_groups"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "remittances", ROLES),
            lambda apps, schema_editor: revoke(apps, "remittances", ROLES),
        )
    ]
