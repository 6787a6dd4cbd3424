"""Admin of bills, charges, usage and the ledger (read-only money records, SET-3 action)."""
