"""Admin for the accounts part of remittances."""
