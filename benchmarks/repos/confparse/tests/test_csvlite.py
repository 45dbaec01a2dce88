from confparse import read_rows, sniff_delimiter


def test_sniff_comma():
    assert sniff_delimiter("a,b,c\n1,2,3\n") == ","


def test_sniff_semicolon():
    assert sniff_delimiter("a;b\n1;2\n") == ";"


def test_sniff_ignores_quoted_delimiters():
    assert sniff_delimiter('name;note\nbob;"a;b"\nann;plain\n') == ";"


def test_read_rows_dicts():
    assert read_rows("x,y\n1,2\n\n3,4\n") == [{"x": "1", "y": "2"}, {"x": "3", "y": "4"}]


def test_read_rows_lists():
    assert read_rows("1|2\n3|4\n", header=False) == [["1", "2"], ["3", "4"]]


def test_read_rows_short_rows_filled():
    assert read_rows("a,b,c\n1,2,3\n4,5\n", delimiter=",") == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "4", "b": "5", "c": ""},
    ]


def test_read_rows_bom():
    assert read_rows("\ufeffid,name\n1,ann\n") == [{"id": "1", "name": "ann"}]
