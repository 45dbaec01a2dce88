"""Physical quantities and unit conversion.

Units live in dimension families (length, mass, time, temperature, data, ...). Linear
units have a factor to the family's base unit; temperatures are affine (factor and
offset). Prefixed forms ("km", "MiB") are spelled out in the table for clarity rather than
derived, so every accepted spelling can be found by reading this file.
"""

import math
import re

__all__ = ["Quantity", "UnitError", "Unit", "UNITS", "convert", "parse_quantity", "lookup"]


class UnitError(ValueError):
    """Unknown unit, or a conversion between incompatible dimensions."""


class Unit:
    __slots__ = ("symbol", "dimension", "factor", "offset", "aliases")

    def __init__(self, symbol, dimension, factor, offset=0.0, aliases=()):
        self.symbol = symbol
        self.dimension = dimension
        self.factor = factor
        self.offset = offset
        self.aliases = tuple(aliases)

    def to_base(self, value):
        return (value + self.offset) * self.factor

    def from_base(self, value):
        return value / self.factor - self.offset

    def __repr__(self):
        return f"Unit({self.symbol!r}, {self.dimension!r})"


_TABLE = [
    # length (base: metre)
    Unit("m", "length", 1.0, aliases=("meter", "meters", "metre", "metres")),
    Unit("km", "length", 1000.0, aliases=("kilometer", "kilometers", "kilometre")),
    Unit("cm", "length", 0.01, aliases=("centimeter", "centimeters")),
    Unit("mm", "length", 0.001, aliases=("millimeter", "millimeters")),
    Unit("in", "length", 0.0254, aliases=("inch", "inches", '"')),
    Unit("ft", "length", 0.3048, aliases=("foot", "feet", "'")),
    Unit("yd", "length", 0.9144, aliases=("yard", "yards")),
    Unit("mi", "length", 1609.344, aliases=("mile", "miles")),
    Unit("nmi", "length", 1852.0, aliases=("nautical_mile", "nautical_miles")),
    # mass (base: kilogram)
    Unit("kg", "mass", 1.0, aliases=("kilogram", "kilograms")),
    Unit("g", "mass", 0.001, aliases=("gram", "grams")),
    Unit("mg", "mass", 1e-6, aliases=("milligram", "milligrams")),
    Unit("t", "mass", 1000.0, aliases=("tonne", "tonnes")),
    Unit("lb", "mass", 0.45359237, aliases=("pound", "pounds", "lbs")),
    Unit("oz", "mass", 0.028349523125, aliases=("ounce", "ounces")),
    # time (base: second)
    Unit("s", "time", 1.0, aliases=("sec", "second", "seconds")),
    Unit("ms", "time", 0.001, aliases=("millisecond", "milliseconds")),
    Unit("min", "time", 60.0, aliases=("minute", "minutes")),
    Unit("h", "time", 3600.0, aliases=("hr", "hour", "hours")),
    Unit("day", "time", 86400.0, aliases=("days", "d")),
    # temperature (base: kelvin); value_K = (value + offset) * factor
    Unit("K", "temperature", 1.0, aliases=("kelvin",)),
    Unit("degC", "temperature", 1.0, offset=273.15, aliases=("°C", "celsius", "C")),
    Unit("degF", "temperature", 5.0 / 9.0, offset=459.67, aliases=("°F", "fahrenheit", "F")),
    # data (base: byte)
    Unit("B", "data", 1.0, aliases=("byte", "bytes")),
    Unit("kB", "data", 1e3, aliases=("KB", "kilobyte", "kilobytes")),
    Unit("MB", "data", 1e6, aliases=("megabyte", "megabytes")),
    Unit("GB", "data", 1e9, aliases=("gigabyte", "gigabytes")),
    Unit("KiB", "data", 1024.0, aliases=("kibibyte",)),
    Unit("MiB", "data", 1024.0**2, aliases=("mebibyte",)),
    Unit("GiB", "data", 1024.0**3, aliases=("gibibyte",)),
    # speed (base: metre per second)
    Unit("m/s", "speed", 1.0, aliases=("mps",)),
    Unit("km/h", "speed", 1000.0 / 3600.0, aliases=("kph", "kmh")),
    Unit("mph", "speed", 1609.344 / 3600.0, aliases=("mi/h",)),
    Unit("kn", "speed", 1852.0 / 3600.0, aliases=("knot", "knots")),
]

UNITS = {}
for _unit in _TABLE:
    for _name in (_unit.symbol, *_unit.aliases):
        if _name in UNITS:
            raise RuntimeError(f"duplicate unit spelling {_name!r}")
        UNITS[_name] = _unit


def lookup(name):
    """Find a unit by symbol or alias. Exact spelling first, then case-insensitive."""
    name = name.strip()
    if name in UNITS:
        return UNITS[name]
    folded = [u for key, u in UNITS.items() if key.lower() == name.lower()]
    # "mb" could be MB or a typo of something else; only accept unambiguous folds.
    distinct = {u.symbol for u in folded}
    if len(distinct) == 1:
        return folded[0]
    if len(distinct) > 1:
        raise UnitError(f"ambiguous unit {name!r}: could be {', '.join(sorted(distinct))}")
    raise UnitError(f"unknown unit {name!r}")


def convert(value, from_unit, to_unit):
    """Convert a number between two units of the same dimension."""
    src = lookup(from_unit) if isinstance(from_unit, str) else from_unit
    dst = lookup(to_unit) if isinstance(to_unit, str) else to_unit
    if src.dimension != dst.dimension:
        raise UnitError(f"cannot convert {src.dimension} ({src.symbol}) to {dst.dimension} ({dst.symbol})")
    return dst.from_base(src.to_base(value))


class Quantity:
    """A value with a unit. Supports +, - (same dimension), * and / by plain numbers, and comparison."""

    __slots__ = ("value", "unit")

    def __init__(self, value, unit):
        self.value = float(value)
        self.unit = lookup(unit) if isinstance(unit, str) else unit

    def to(self, unit):
        target = lookup(unit) if isinstance(unit, str) else unit
        return Quantity(convert(self.value, self.unit, target), target)

    def _coerce(self, other):
        if not isinstance(other, Quantity):
            raise TypeError(f"expected a Quantity, got {type(other).__name__}")
        if other.unit.dimension != self.unit.dimension:
            raise UnitError(f"incompatible dimensions: {self.unit.dimension} and {other.unit.dimension}")
        if self.unit.dimension == "temperature" and (self.unit.offset or other.unit.offset):
            # Adding 10 °C to 20 °C is ambiguous (absolute vs difference); refuse it.
            raise UnitError("cannot add or subtract absolute temperatures; convert to K first")
        return other.to(self.unit).value

    def __add__(self, other):
        return Quantity(self.value + self._coerce(other), self.unit)

    def __sub__(self, other):
        return Quantity(self.value - self._coerce(other), self.unit)

    def __mul__(self, number):
        if isinstance(number, Quantity):
            return NotImplemented
        return Quantity(self.value * number, self.unit)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Quantity):
            return self.to_base() / other.to_base() if self._same_dimension(other) else NotImplemented
        return Quantity(self.value / other, self.unit)

    def _same_dimension(self, other):
        return self.unit.dimension == other.unit.dimension

    def to_base(self):
        return self.unit.to_base(self.value)

    def __eq__(self, other):
        if not isinstance(other, Quantity) or not self._same_dimension(other):
            return NotImplemented
        return math.isclose(self.to_base(), other.to_base(), rel_tol=1e-9, abs_tol=1e-12)

    def __lt__(self, other):
        if not isinstance(other, Quantity) or not self._same_dimension(other):
            return NotImplemented
        return self.to_base() < other.to_base()

    def __le__(self, other):
        return self == other or self < other

    def __hash__(self):
        return hash((self.unit.dimension, round(self.to_base(), 9)))

    def __repr__(self):
        return f"Quantity({self.value!r}, {self.unit.symbol!r})"

    def __str__(self):
        return format_quantity(self)

    def __format__(self, spec):
        # "{:.3}" means three significant digits; an empty spec is str().
        if not spec:
            return str(self)
        if not spec.startswith(".") or not spec[1:].isdigit():
            raise ValueError(f"invalid format spec for Quantity: {spec!r}")
        return format_quantity(self, precision=int(spec[1:]))


_QUANTITY = re.compile(
    r"""^\s*
    (?P<number>[-+]?(?:\d+(?:[.,]\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    \s*
    (?P<unit>[^\d\s].*?)
    \s*$""",
    re.VERBOSE,
)


def parse_quantity(text):
    """Parse "12.5 km", "3ft", "-40 °F", "1e3 g" into a Quantity."""
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"cannot parse quantity {text!r}")
    number = match.group("number").replace(",", ".")
    return Quantity(float(number), match.group("unit"))


def format_quantity(quantity, precision=6):
    """Format with up to `precision` significant digits and no trailing zeros: '1.5 km'."""
    value = quantity.value
    if value == 0:
        text = "0"
    else:
        digits = max(precision - int(math.floor(math.log10(abs(value)))) - 1, 0)
        text = f"{value:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return f"{text} {quantity.unit.symbol}"


def best_unit(quantity, candidates=None):
    """Re-express a quantity in the candidate unit that gives the smallest value >= 1."""
    dimension = quantity.unit.dimension
    pool = [lookup(c) for c in candidates] if candidates else [u for u in _TABLE if u.dimension == dimension]
    pool = [u for u in pool if u.dimension == dimension]
    if not pool:
        raise UnitError(f"no candidate units for dimension {dimension}")
    converted = [(convert(quantity.value, quantity.unit, u), u) for u in pool]
    at_least_one = [(v, u) for v, u in converted if abs(v) >= 1]
    if at_least_one:
        value, unit = min(at_least_one, key=lambda pair: abs(pair[0]))
    else:
        value, unit = max(converted, key=lambda pair: abs(pair[0]))
    return Quantity(value, unit)
