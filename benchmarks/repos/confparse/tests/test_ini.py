import pytest

from confparse import ParseError, dumps, load, loads

SAMPLE = """\
; global settings
owner = ops

[server]
host = example.org
port = 8080   # default port
debug = off

[paths]
root = /srv
logs = ${root}/logs
cache = ${server:host}-cache
"""


def test_sections_and_values():
    cfg = loads(SAMPLE)
    assert cfg.sections() == ["server", "paths"]
    assert cfg.get("server", "host") == "example.org"


def test_inline_comment_and_int():
    assert loads(SAMPLE).get_int("server", "port") == 8080


def test_values_starting_with_comment_char_kept():
    cfg = loads("[style]\ncolor = #ff0000\nsep = ;\n")
    assert cfg.get("style", "color") == "#ff0000"
    assert cfg.get("style", "sep") == ";"


def test_defaults_inherited():
    assert loads(SAMPLE).get("paths", "owner") == "ops"


def test_interpolation():
    cfg = loads(SAMPLE)
    assert cfg.get("paths", "logs") == "/srv/logs"
    assert cfg.get("paths", "cache") == "example.org-cache"


def test_interpolation_cycle_is_parse_error():
    cfg = loads("[a]\nx = ${y}\ny = ${x}\n")
    with pytest.raises(ParseError, match="too deep"):
        cfg.get("a", "x")


def test_keys_case_insensitive():
    cfg = loads("[Main]\nName = demo\n")
    assert cfg.get("Main", "NAME") == "demo"
    assert cfg.get_raw("Main", "Name") == "demo"


def test_bool():
    assert loads(SAMPLE).get_bool("server", "debug") is False


def test_multiline_list():
    cfg = loads("[x]\nitems =\n    a\n    b\n")
    assert cfg.get_list("x", "items") == ["a", "b"]


def test_syntax_error_line():
    with pytest.raises(ParseError, match="line 2"):
        loads("[x]\nnot an assignment\n")


def test_dumps_roundtrip_sections():
    cfg = loads("[a]\nk = v\n[b]\nm = n\n")
    assert loads(dumps(cfg)).as_dict() == cfg.as_dict()


def test_dumps_keeps_defaults():
    text = dumps(loads(SAMPLE))
    assert text.startswith("owner = ops\n")
    assert loads(text).get("server", "owner") == "ops"


def test_bom_is_ignored():
    cfg = loads("\ufeff[main]\nname = demo\n")
    assert cfg.sections() == ["main"]


def test_load_from_path(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[main]\nname = demo\n", encoding="utf-8")
    assert load(path).get("main", "name") == "demo"
    path.write_text("[main]\noops\n", encoding="utf-8")
    with pytest.raises(ParseError, match="app.ini"):
        load(path)
