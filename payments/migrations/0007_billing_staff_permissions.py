"""What each staff role may do with bills, charges, usage and the ledger (SEC-3).

Both roles see bills, charges, usage and the ledger: account managers answer customers about
them, finance reconciles them. Only finance staff pay a bill from the balance by hand (SET-3,
``pay_bill``), which also lets them switch an account's automatic settlement (SET-1).
"""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

VIEW = ["view_bill", "view_charge", "view_usagerecord", "view_ledgerentry"]
ROLES = {
    "Account managers": VIEW,
    "Finance staff": [*VIEW, "pay_bill"],
}


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_ledger_brin")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "payments", ROLES),
            lambda apps, schema_editor: revoke(apps, "payments", ROLES),
        )
    ]
