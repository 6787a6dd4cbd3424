"""Admin for the claims part of remittances."""
