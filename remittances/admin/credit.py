"""Admin for the credit part of remittances."""
