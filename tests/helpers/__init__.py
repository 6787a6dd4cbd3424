"""Helpers shared by test modules (not test modules themselves): a test module imports helpers
from here, from ``tests/factories/`` or ``tests/payments/invariants.py``, and fixtures come from
the ``conftest.py`` files; never from another test module."""
