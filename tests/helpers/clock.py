"""The suite's fixed moment (the ``now`` and ``frozen_clock`` fixtures of ``tests/conftest.py``)."""

from __future__ import annotations

from datetime import datetime, timezone

# The moment the ``now`` fixture stands at. Fixed, so a test reads the same dates whatever day and
# hour the suite runs (CI runs it a second time under a shifted clock, see .ci/run).
FROZEN_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
