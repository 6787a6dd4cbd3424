"""Who may refund, move and pay out credited funds (RFD-1, RFD-2, SEC-3).

Finance staff record refunds, approve or reject the refunds and transfers of others (four eyes:
the services and CheckConstraints refuse the requester), generate the outgoing pain.001 files,
download them and mark them sent. Account managers initiate transfers between accounts (RFD-2)
and see refunds and files.
"""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {
    "Account managers": [
        "view_fundstransfer",
        "add_fundstransfer",
        "view_refundrequest",
    ],
    "Finance staff": [
        "view_refundrequest",
        "add_refundrequest",
        "approve_refundrequest",
        "view_fundstransfer",
        "approve_fundstransfer",
        "view_paymentfile",
        "generate_paymentfile",
        "send_paymentfile",
    ],
}


class Migration(migrations.Migration):
    dependencies = [
        ("remittances", "0010_rfd_refunds_transfers_payment_files"),
        ("payments", "0002_staff_groups"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: grant(apps, "remittances", ROLES),
            lambda apps, schema_editor: revoke(apps, "remittances", ROLES),
        )
    ]
