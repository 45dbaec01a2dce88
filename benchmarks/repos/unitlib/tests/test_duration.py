import pytest

from unitlib import format_duration, parse_duration


def test_parse_compact():
    assert parse_duration("1h30m") == 5400


def test_parse_with_spaces():
    assert parse_duration("1d 4h") == 100800
    assert parse_duration(" 2m 5s ") == 125


def test_parse_bare_seconds():
    assert parse_duration("90") == 90


def test_parse_invalid():
    with pytest.raises(ValueError):
        parse_duration("1x")


def test_format():
    assert format_duration(3725) == "1h2m5s"
    assert format_duration(0) == "0s"


def test_format_negative():
    assert format_duration(-90) == "-1m30s"
