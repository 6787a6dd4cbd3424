"""When the demo's billing history happened, relative to the ``now`` the seed runs at.

Three whole billing months before the current one are billed and settled (``PAST_PERIODS``,
oldest first); the current month has usage that is not billed yet (PAY-3 bills it after the month
ends). Credit is approved before the oldest month starts. Every event is strictly before ``now``,
whatever day and hour ``now`` falls on (a seed at 00:05 on the 1st still has a month end behind it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


MONTHS_BILLED = 3
MONTH_END_RUN = timedelta(hours=1)  # the month-end bills are generated at 01:00 on the 1st
LEAD_TIME = timedelta(days=45)  # credit approved and remittance accounts set up this long before
RECENT_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class Period:
    year: int
    month: int

    @property
    def code(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=timezone.utc)

    @property
    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def day(self, number: int) -> datetime:
        """Midnight of day ``number`` of this month (capped at the month's last day)."""
        last = (self.next.start - timedelta(days=1)).day
        return self.start.replace(day=min(number, last))


class Clock:
    """The seed's ``now`` and the billing calendar around it."""

    def __init__(self, now: datetime):
        self.now = now.astimezone(timezone.utc)
        self.current = Period(self.now.year, self.now.month)
        periods = [self.current]
        for _ in range(MONTHS_BILLED):
            periods.insert(0, periods[0].previous)
        self.past = periods[:-1]  # oldest first
        self.history_start = self.past[0].start - LEAD_TIME
        self.today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        # "Today" for the dashboard's figures (credited today, failed in the last 24 hours): today's
        # steps (an import, then claims reviewed and approved, the settlement after them) happen
        # between midnight and ``now``, however little of today has passed, so a seed just after
        # midnight UTC still shows them as today's. On the 1st they come after the month-end run, so
        # today's transfers meet the bills it issued (a partial payment leaves a bill partially paid,
        # not only older bills overdue). The timeline keeps their order when they share a second.
        # Only when nothing of today is left (midnight exactly) is it the half hour before.
        today_start = max(self.today, self.month_end_run(self.past[-1]))
        self.recent_start = today_start if self.now > today_start else self.now - RECENT_WINDOW

    def month_end_run(self, period: Period) -> datetime:
        """When the month-end job billed ``period``: 01:00 on the 1st of the next month, or
        halfway between midnight and ``now`` when the seed runs in that first hour."""
        start = period.next.start
        return min(start + MONTH_END_RUN, start + (self.now - start) / 2)

    def before_now(self, when: datetime, *, after: datetime, margin: timedelta = timedelta(minutes=1)) -> datetime:
        """``when``, or just before ``now`` if it would be later, but never before ``after`` (the event
        that asks for it: the timeline plays forwards only). When ``after`` is itself within ``margin``
        of ``now`` (the month-end run of a seed started seconds after midnight), halfway between them."""
        latest = self.now - margin
        if latest <= after:
            latest = after + (self.now - after) / 2
        return min(when, latest)

    def minutes_ago(self, minutes: int) -> datetime:
        """``minutes`` before ``now``, but not before today (``recent_start``)."""
        return max(self.recent_start, self.now - timedelta(minutes=minutes))

    def recent(self, fraction: float) -> datetime:
        """A moment today, ``fraction`` of the way from ``recent_start`` to ``now``."""
        return (self.recent_start + (self.now - self.recent_start) * fraction).replace(microsecond=0)

    def statement_days(self) -> list[datetime]:
        """When the receiving bank's statements were imported: the 25th of the last two billed
        months (customers pay last month's bill) and earlier today."""
        return [self.past[1].day(25) + timedelta(hours=10), self.past[2].day(25) + timedelta(hours=10),
                self.recent(0.2)]
