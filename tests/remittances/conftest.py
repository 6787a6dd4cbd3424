"""Fixtures of the remittances tests (the role users, the clock and the sample statements'
receiving accounts are in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from tests.helpers.remittance_accounts import FINANCE_PERMS, MANAGER_PERMS, staff_with


@pytest.fixture
def am():
    """An account manager: views, issues, suspends and resumes remittance accounts."""
    return staff_with("rem-manager", *MANAGER_PERMS)


@pytest.fixture
def fin():
    """Finance staff: may view remittance accounts and download their forms, not issue."""
    return staff_with("rem-finance", *FINANCE_PERMS)


@pytest.fixture
def nobody():
    """Staff without any remittance permission."""
    return staff_with("rem-nobody")
