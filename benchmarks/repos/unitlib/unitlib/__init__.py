"""unitlib: unit conversion, durations and calendar helpers."""

from unitlib.dates import add_months, business_days_between, iso_week
from unitlib.duration import format_duration, parse_duration
from unitlib.units import Quantity, UnitError, convert, format_quantity, parse_quantity

__all__ = [
    "Quantity",
    "UnitError",
    "add_months",
    "business_days_between",
    "convert",
    "format_duration",
    "format_quantity",
    "iso_week",
    "parse_duration",
    "parse_quantity",
]
