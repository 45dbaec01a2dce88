import datetime as dt

from unitlib import add_months, business_days_between, iso_week


def test_add_months_clamps():
    assert add_months(dt.date(2023, 1, 31), 1) == dt.date(2023, 2, 28)


def test_add_months_into_december_and_across_years():
    assert add_months(dt.date(2023, 11, 15), 1) == dt.date(2023, 12, 15)
    assert add_months(dt.date(2023, 12, 15), 1) == dt.date(2024, 1, 15)
    assert add_months(dt.date(2024, 3, 31), -13) == dt.date(2023, 2, 28)


def test_iso_week():
    assert iso_week(dt.date(2021, 6, 15)) == "2021-W24"


def test_iso_week_uses_iso_year():
    assert iso_week(dt.date(2021, 1, 1)) == "2020-W53"
    assert iso_week(dt.date(2024, 12, 30)) == "2025-W01"


def test_business_days():
    assert business_days_between(dt.date(2024, 1, 1), dt.date(2024, 1, 8)) == 5


def test_business_days_holidays():
    assert business_days_between(dt.date(2024, 1, 1), dt.date(2024, 1, 8), [dt.date(2024, 1, 1)]) == 4


def test_business_days_reversed_is_negative():
    assert business_days_between(dt.date(2024, 1, 8), dt.date(2024, 1, 1)) == -5
