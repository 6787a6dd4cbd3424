"""Admin for the statements part of remittances."""
