from textkit import slugify


def test_basic():
    assert slugify("Hello World") == "hello-world"


def test_accents_folded():
    assert slugify("Crème brûlée") == "creme-brulee"


def test_custom_separator():
    assert slugify("a b c", separator="_") == "a_b_c"


def test_max_length_cuts_at_word():
    assert slugify("the quick brown fox", max_length=12) == "the-quick"


def test_no_trailing_separator_after_punctuation():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("  ...leading dots") == "leading-dots"
