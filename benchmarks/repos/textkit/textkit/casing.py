"""Identifier casing conversions."""

import re

_SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"}
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def camel_to_snake(name):
    """HTTPServerError -> http_server_error, parseURL2 -> parse_url2."""
    return _BOUNDARY.sub("_", name).lower()


def snake_to_camel(name, upper_first=False):
    """http_server_error -> httpServerError (or HttpServerError)."""
    parts = [p for p in name.split("_") if p]
    if not parts:
        return ""
    head = parts[0].capitalize() if upper_first else parts[0].lower()
    return head + "".join(p.capitalize() for p in parts[1:])


def kebab_case(name):
    """Any of camelCase, snake_case, or spaced words -> kebab-case."""
    words = re.split(r"[\s_\-]+", camel_to_snake(name.strip()))
    return "-".join(w for w in words if w)


def title_case(text):
    """Title-case a headline, keeping short connecting words lowercase (except first and last)."""
    words = text.split()
    out = []
    for i, word in enumerate(words):
        lower = word.lower()
        if 0 < i < len(words) - 1 and lower in _SMALL_WORDS:
            out.append(lower)
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return " ".join(out)
