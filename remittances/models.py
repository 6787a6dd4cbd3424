"""Credit limits, remittance accounts, bank statements and claims (see the remittances issue)."""
