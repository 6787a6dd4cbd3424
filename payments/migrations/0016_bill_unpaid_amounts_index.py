# The unpaid bills' amounts as a covering partial index (index-only scans for the admin index's
# overdue figure and ageing chart, and the CC-4 report). Built CONCURRENTLY: on a live table of
# millions of bills a plain CREATE INDEX would block every bill write while it builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("payments", "0015_cc_3_pause_permission_codename"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="bill",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "partially_paid", "overdue"])),
                fields=["status", "currency", "due_date"],
                include=("total", "amount_paid", "id"),
                name="bill_unpaid_amounts",
            ),
        ),
    ]
