"""Calendar helpers that the standard library leaves out."""

import calendar
import datetime as dt


def add_months(day, months):
    """Add calendar months, clamping to the last day of the target month (Jan 31 + 1 -> Feb 28/29)."""
    index = day.month - 1 + months
    year = day.year + index // 12
    month = index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return day.replace(year=year, month=month, day=min(day.day, last))


def iso_week(day):
    """The ISO week as a string, e.g. '2021-W01'. Uses the ISO year, not the calendar year."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def business_days_between(start, end, holidays=()):
    """Count weekdays in [start, end) that are not holidays. Negative when end < start."""
    if end < start:
        return -business_days_between(end, start, holidays)
    holidays = set(holidays)
    count = 0
    day = start
    while day < end:
        if day.weekday() < 5 and day not in holidays:
            count += 1
        day += dt.timedelta(days=1)
    return count
