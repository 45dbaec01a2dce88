"""Reading small CSV files whose delimiter is not known in advance."""

import csv
import io

_CANDIDATES = ",;\t|"


def sniff_delimiter(sample):
    """Pick the candidate delimiter that splits every non-empty line into the same, largest count."""
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise ValueError("cannot sniff the delimiter of an empty sample")
    best, best_fields = ",", 1
    for delim in _CANDIDATES:
        counts = {len(next(csv.reader([line], delimiter=delim))) for line in lines}
        if len(counts) == 1:
            fields = counts.pop()
            if fields > best_fields:
                best, best_fields = delim, fields
    return best


def read_rows(text, delimiter=None, header=True):
    """Parse CSV text into dicts (header=True) or lists. Blank lines are skipped."""
    text = text.lstrip("\ufeff")  # editors on Windows prepend a byte-order mark
    delimiter = delimiter or sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not header:
        return rows
    if not rows:
        return []
    names = [name.strip() for name in rows[0]]
    # Short rows get empty strings so every dict has every column.
    return [dict(zip(names, row + [""] * (len(names) - len(row)))) for row in rows[1:]]
