import pytest

from unitlib import Quantity, UnitError, convert, format_quantity, parse_quantity


def test_length():
    assert convert(1, "mi", "km") == pytest.approx(1.609344)


def test_aliases_and_case_fold():
    assert convert(1, "Kilometers", "m") == pytest.approx(1000)


def test_incompatible():
    with pytest.raises(UnitError, match="cannot convert"):
        convert(1, "kg", "m")


def test_temperature_conversion():
    assert convert(100, "degC", "degF") == pytest.approx(212)
    assert convert(-40, "°F", "°C") == pytest.approx(-40)
    assert convert(0, "K", "degC") == pytest.approx(-273.15)


def test_quantity_add():
    total = Quantity(1, "km") + Quantity(500, "m")
    assert total.unit.symbol == "km"
    assert total.value == pytest.approx(1.5)


def test_quantity_equality_across_units():
    assert Quantity(1, "km") == Quantity(1000, "m")
    assert Quantity(1, "GiB") == Quantity(1024, "MiB")
    assert Quantity(1, "kg") != Quantity(1, "g")


def test_parse_quantity():
    q = parse_quantity("12.5 km")
    assert (q.value, q.unit.symbol) == (12.5, "km")


def test_parse_quantity_scientific():
    q = parse_quantity("1e3 g")
    assert (q.value, q.unit.symbol) == (1000.0, "g")
    assert parse_quantity("2.5E-3 s").value == pytest.approx(0.0025)


def test_str():
    assert str(Quantity(1.5, "km")) == "1.5 km"


def test_str_large_round_numbers():
    assert str(Quantity(2000000, "B")) == "2000000 B"
    assert str(Quantity(100, "m")) == "100 m"


def test_format_spec_precision():
    assert f"{Quantity(3.14159265, 'm'):.3}" == "3.14 m"
    assert format_quantity(Quantity(2 / 3, "kg"), precision=2) == "0.67 kg"
