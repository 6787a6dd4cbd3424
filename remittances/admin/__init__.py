"""Admin screens of the remittances app, one module per area."""

from . import accounts, claims, credit, reconciliation, refunds, statements  # noqa: F401  (registers the ModelAdmins)
