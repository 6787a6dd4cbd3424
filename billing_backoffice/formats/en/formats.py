"""Dates as finance reads them (issue 10, "Screens that fit"): ISO order, 24-hour clock, UTC.

"2026-12-03 17:50" is unambiguous in every country the customers are in and is half the width of
Django's English "Dec. 3, 2026, 5:50 p.m.", which made the lists wider than 1440 px.
"""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j F"
YEAR_MONTH_FORMAT = "F Y"
