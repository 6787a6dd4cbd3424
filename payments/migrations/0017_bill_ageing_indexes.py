# CC-4 at a million bills: the unpaid bills' covering index also carries the account (the report
# grouped by region or account manager joins accounts without reading the bills table), and the
# bills issued in the DSO window are read from an index of their own instead of a scan of every
# bill. Built CONCURRENTLY (a plain CREATE INDEX blocks every bill write while it builds); the old
# index is dropped only after its replacement exists, so the index's figures never lose theirs.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("payments", "0016_bill_unpaid_amounts_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="bill",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "partially_paid", "overdue"])),
                fields=["status", "currency", "due_date"],
                include=("total", "amount_paid", "id", "account"),
                name="bill_unpaid_ageing",
            ),
        ),
        RemoveIndexConcurrently(model_name="bill", name="bill_unpaid_amounts"),
        AddIndexConcurrently(
            model_name="bill",
            index=models.Index(fields=["issued_at"], include=("currency", "total", "account"), name="bill_issued_sales"),
        ),
    ]
