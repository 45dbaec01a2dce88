from textkit import dedent_block, wrap


def test_wrap_simple():
    assert wrap("aaa bbb ccc", width=7) == "aaa bbb\nccc"


def test_wrap_line_exactly_width_fits():
    assert wrap("abcd efgh ij", width=9) == "abcd efgh\nij"


def test_wrap_indent():
    assert wrap("one two three", width=9, indent="  ") == "  one two\n  three"


def test_wrap_paragraphs():
    assert wrap("a b\n\nc d", width=10) == "a b\n\nc d"


def test_dedent():
    assert dedent_block("    x\n      y") == "x\n  y"


def test_dedent_ignores_blank_lines():
    assert dedent_block("    x\n\n    y") == "x\n\ny"
    assert dedent_block("    x\n  \n    y") == "x\n\ny"
