"""Staff roles as groups (SEC-3): what each role may see and do in the payments admin.

"Account managers" look after customers' accounts and their payment methods (DESIGN.md, who does
what):
- view accounts: they answer the customer; contact details and money fields are not theirs to
  edit (no ``change_account``), the console owns those.
- ``deactivate_account``: start or undo the 15-day silent period on the customer's request (LINK-2).
- view payment methods + ``make_default_paymentmethod`` + ``remove_paymentmethod``: switch the
  default (DEF-2) or unlink a method (DEL-1..3) for a customer who asks; the services refuse what
  the rules forbid. Methods themselves stay read-only (the processor owns them).
- view link attempts and 3DS challenges: explain why a card did not link (LINK-5, LINK-7).
- view holds + ``release_verificationhold``: void a customer's USD 1 hold now instead of waiting
  for the job (HOLD-2; the service voids it exactly once).

"Finance staff" reconcile money, so they need to see the same records but change none of them:
view of accounts, payment methods, holds, link attempts and 3DS challenges; none of the action
permissions (no make default, remove, deactivate or release). Their own powers (claims, bank
statements, manual bill payment) are granted by the remittances migrations.

Permissions are created inside the migration (``billing_backoffice.staff_roles.grant``) because
on a fresh database they would otherwise only appear in ``post_migrate``, after it has run.
Reversible: the reverse takes these permissions back out of the groups and deletes a group that
is left with none (other apps may have added their own to it).
"""

from django.db import migrations

from billing_backoffice.staff_roles import grant, revoke

ROLES = {
    "Account managers": [
        "view_account",
        "deactivate_account",
        "view_paymentmethod",
        "make_default_paymentmethod",
        "remove_paymentmethod",
        "view_linkattempt",
        "view_verificationhold",
        "release_verificationhold",
        "view_threedschallenge",
    ],
    "Finance staff": [
        "view_account",
        "view_paymentmethod",
        "view_verificationhold",
        "view_linkattempt",
        "view_threedschallenge",
    ],
}


def create_staff_groups(apps, schema_editor) -> None:
    grant(apps, "payments", ROLES)


def remove_staff_groups(apps, schema_editor) -> None:
    revoke(apps, "payments", ROLES)
    # The groups are this migration's: delete them unless another app still gives them permissions.
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES, permissions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_groups, remove_staff_groups)]
