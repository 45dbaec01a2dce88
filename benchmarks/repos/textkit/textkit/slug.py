"""URL slugs."""

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text, separator="-", max_length=None):
    """Turn arbitrary text into a lowercase ASCII slug.

    Accented letters are folded to their ASCII base letter, every run of other
    characters becomes a single separator, and separators never lead or trail.
    """
    normalized = unicodedata.normalize("NFKD", str(text))
    ascii_text = normalized.encode("ascii", "ignore").decode("ascii")
    slug = _NON_WORD.sub(separator, ascii_text.lower()).strip(separator)
    if max_length is not None and len(slug) > max_length:
        slug = slug[:max_length]
        # Cut at a word boundary so a slug never ends in half a word.
        if separator in slug:
            slug = slug.rsplit(separator, 1)[0]
        slug = slug.strip(separator)
    return slug
