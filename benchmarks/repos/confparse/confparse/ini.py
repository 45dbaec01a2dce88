"""A forgiving INI format.

Differences from :mod:`configparser` that motivated this module:

* comments start with ``#`` or ``;`` at the start of a line, or with `` #`` / `` ;``
  (preceded by whitespace) after a value;
* values may continue on following lines that are indented;
* keys before the first section header belong to the implicit ``DEFAULT`` section, whose
  keys every other section inherits;
* ``${section:key}`` and ``${key}`` interpolate other values (same section first);
* typed getters: get_int, get_float, get_bool, get_list.

Round-tripping with :func:`dumps` keeps section and key order.
"""

import re

__all__ = ["Config", "ParseError", "load", "loads", "dumps", "DEFAULT"]

DEFAULT = "DEFAULT"
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_ASSIGN = re.compile(r"^(?P<key>[^=:\s][^=:]*?)\s*[=:]\s*(?P<value>.*)$")
_INLINE_COMMENT = re.compile(r"\s[#;].*$")
_REFERENCE = re.compile(r"\$\{(?:(?P<section>[^:}]+):)?(?P<key>[^}]+)\}")
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_MAX_DEPTH = 10


class ParseError(ValueError):
    """Bad INI syntax, with the line number; or a bad lookup/interpolation."""

    def __init__(self, message, line=None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class Config:
    """Parsed INI data: ordered sections of ordered string values."""

    def __init__(self):
        self._sections = {DEFAULT: {}}

    # ------------------------------------------------------------ structure

    def sections(self):
        """Section names in file order, without DEFAULT."""
        return [name for name in self._sections if name != DEFAULT]

    def has_section(self, name):
        return name in self._sections

    def add_section(self, name):
        if name in self._sections:
            raise ParseError(f"duplicate section {name!r}")
        self._sections[name] = {}

    def keys(self, section):
        """Keys of a section, including inherited DEFAULT keys (own keys first)."""
        own = list(self._section(section))
        inherited = [k for k in self._sections[DEFAULT] if k not in own]
        return own + inherited if section != DEFAULT else own

    def _section(self, name):
        try:
            return self._sections[name]
        except KeyError:
            raise ParseError(f"no section {name!r}") from None

    # ------------------------------------------------------------ raw access

    def set(self, section, key, value):
        self._section(section)[key.lower()] = str(value)

    def get_raw(self, section, key, fallback=None):
        key = key.lower()
        values = self._section(section)
        if key in values:
            return values[key]
        if key in self._sections[DEFAULT]:
            return self._sections[DEFAULT][key]
        return fallback

    def remove(self, section, key):
        values = self._section(section)
        if key.lower() not in values:
            raise ParseError(f"no key {key!r} in section {section!r}")
        del values[key.lower()]

    # ------------------------------------------------------------ interpolated access

    def get(self, section, key, fallback=None):
        raw = self.get_raw(section, key)
        if raw is None:
            return fallback
        return self._interpolate(section, raw, depth=0)

    def _interpolate(self, section, value, depth):
        if depth > _MAX_DEPTH:
            raise ParseError(f"interpolation too deep in section {section!r} (a reference cycle?)")

        def replace(match):
            target_section = match.group("section") or section
            target_key = match.group("key")
            raw = self.get_raw(target_section, target_key)
            if raw is None:
                raise ParseError(f"bad reference ${{{match.group(0)[2:-1]}}}: no such key")
            return self._interpolate(target_section, raw, depth + 1)

        return _REFERENCE.sub(replace, value)

    # ------------------------------------------------------------ typed getters

    def get_int(self, section, key, fallback=None):
        value = self.get(section, key)
        if value is None:
            return fallback
        try:
            return int(value, 0)
        except ValueError:
            raise ParseError(f"[{section}] {key}: not an integer: {value!r}") from None

    def get_float(self, section, key, fallback=None):
        value = self.get(section, key)
        if value is None:
            return fallback
        try:
            return float(value)
        except ValueError:
            raise ParseError(f"[{section}] {key}: not a number: {value!r}") from None

    def get_bool(self, section, key, fallback=None):
        value = self.get(section, key)
        if value is None:
            return fallback
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ParseError(f"[{section}] {key}: not a boolean: {value!r}")

    def get_list(self, section, key, fallback=None, separator=","):
        """Split on the separator (or on newlines for multi-line values); drop empty items."""
        value = self.get(section, key)
        if value is None:
            return fallback
        parts = value.split("\n") if "\n" in value else value.split(separator)
        return [part.strip() for part in parts if part.strip()]

    def as_dict(self, interpolate=True):
        out = {}
        for name in self.sections():
            getter = self.get if interpolate else self.get_raw
            out[name] = {key: getter(name, key) for key in self.keys(name)}
        return out


# ---------------------------------------------------------------- reading


def _strip_inline_comment(value):
    return _INLINE_COMMENT.sub("", value).rstrip()


def loads(text):
    """Parse INI text into a Config."""
    text = text.lstrip("\ufeff")  # editors on Windows prepend a byte-order mark
    config = Config()
    section = DEFAULT
    last_key = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0].isspace() and last_key is not None:
            # Continuation line: append to the previous value.
            previous = config.get_raw(section, last_key)
            addition = _strip_inline_comment(stripped)
            config.set(section, last_key, f"{previous}\n{addition}" if previous else addition)
            continue
        match = _SECTION.match(stripped)
        if match:
            section = match.group("name").strip()
            if section != DEFAULT:
                try:
                    config.add_section(section)
                except ParseError as exc:
                    raise ParseError(str(exc), number) from None
            last_key = None
            continue
        match = _ASSIGN.match(stripped)
        if not match:
            raise ParseError(f"expected 'key = value' or '[section]', got {stripped!r}", number)
        last_key = match.group("key").strip().lower()
        config.set(section, last_key, _strip_inline_comment(match.group("value")))
    return config


def load(path, encoding="utf-8"):
    """Read and parse an INI file; parse errors name the file."""
    with open(path, encoding=encoding) as handle:
        text = handle.read()
    try:
        return loads(text)
    except ParseError as exc:
        raise ParseError(f"{path}: {exc}") from None


# ---------------------------------------------------------------- writing


def _format_value(value):
    if "\n" in value:
        first, *rest = value.split("\n")
        return first + "".join(f"\n    {line}" for line in rest)
    return value


def dumps(config):
    """Write a Config back to INI text (DEFAULT first, then sections in order)."""
    chunks = []
    defaults = config._sections[DEFAULT]
    if defaults:
        chunks.append("\n".join(f"{k} = {_format_value(v)}" for k, v in defaults.items()))
    for name in config.sections():
        body = [f"[{name}]"]
        body += [f"{k} = {_format_value(v)}" for k, v in config._sections[name].items()]
        chunks.append("\n".join(body))
    return "\n\n".join(chunks) + "\n"
