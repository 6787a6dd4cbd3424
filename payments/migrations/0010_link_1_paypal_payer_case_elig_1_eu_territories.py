"""LINK-1: one PayPal payer id whatever its case; ELIG-1: accounts in EU territories are EU.

The unique index moves from ``paypal_payer_id`` to ``UPPER(paypal_payer_id)``. On a database
that already holds two live PayPal methods whose payer ids differ only by case, creating it
fails: that is a LINK-1 violation a person must resolve (unlink one of them) before migrating.

Accounts registered in AX, GF, GP, MQ, RE, YT or MF were stored as ``OTHER``; their region is
derived again (ELIG-1). Methods they already linked stay as they are.
"""

import django.db.models.functions.text
from django.db import migrations, models

EU_TERRITORIES_WITH_OWN_CODES = ["AX", "GF", "GP", "MQ", "RE", "YT", "MF"]


def eu_territories_to_eu(apps, schema_editor):
    Account = apps.get_model("payments", "Account")
    Account.objects.filter(country__in=EU_TERRITORIES_WITH_OWN_CODES).exclude(region="EU").update(region="EU")


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0009_admin_filter_indexes'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='paymentmethod',
            name='pm_paypal_linked_once',
        ),
        migrations.AddConstraint(
            model_name='paymentmethod',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('paypal_payer_id'), condition=models.Q(('kind', 'paypal'), ('status__in', ['pending', 'active', 'expired'])), name='pm_paypal_linked_once'),
        ),
        migrations.RunPython(eu_territories_to_eu, migrations.RunPython.noop, elidable=True),
    ]
