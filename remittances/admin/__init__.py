"""Admin screens of the remittances app, one module per area."""

from . import account_panels, accounts, claims, credit, reconciliation, refunds, statements  # noqa: F401  (registers the ModelAdmins)
