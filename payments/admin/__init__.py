"""Staff admin of the payments app: a thin layer over ``payments.services``, one module per
concern (found by Django's admin autodiscovery, which imports this package).

- ``accounts``: contact details only, methods/holds/attempts inline, deactivate and reactivate.
- ``methods``, ``holds``, ``link_attempts``, ``three_ds``: records owned by the processor or
  written by services, read-only, with their actions (make default, remove, release now).
- ``bills`` (pay from balance, SET-3; the settlement switch, SET-1), ``charges`` (charges and
  usage), ``ledger`` (an account's ledger with its running balance, SEC-4): money records,
  never edited here.
- ``display``: the columns and search routing they share.

Every action needs its own ``Meta.permissions`` codename (SEC-3), loops over the selected ids
with one service call each and reports refusals with the rule that refused. Card data: only
``PaymentMethod.masked`` (``•••• 4242``) is shown; the gateway token and the fingerprint are
never displayed (SEC-1). Big tables: estimated counts, ``list_select_related``, raw-id foreign
keys, searches routed to indexed columns. Shared admin pieces (paginator, read-only mixins, the
action loop, ``MAX_ID``) are in ``billing_backoffice/admin_site.py``; today's figures on the
index are ``billing_backoffice/site.py``.
"""

from payments.admin import (  # noqa: F401  (each module registers its ModelAdmins)
    accounts,
    bills,
    charges,
    credit_control,
    holds,
    ledger,
    link_attempts,
    methods,
    three_ds,
)
from billing_backoffice import audit_admin  # noqa: E402,F401  (audit log and History pages, SEC-2)
