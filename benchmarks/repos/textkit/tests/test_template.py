import pytest

from textkit import Template, TemplateError, render


def test_variable_and_dotted_lookup():
    assert render("Hi {{ user.name }}!", user={"name": "Ada"}) == "Hi Ada!"


def test_missing_variable_renders_empty():
    assert render("[{{ nope }}]") == "[]"


def test_strict_missing_variable_raises():
    with pytest.raises(TemplateError):
        Template("{{ nope }}", strict=True).render()


def test_filters_chain():
    assert render("{{ name|lower|truncate:6 }}", name="ABCDEFGHIJ") == "abc..."


def test_if_elif_else():
    tpl = Template("{% if a %}A{% elif b %}B{% else %}C{% endif %}")
    assert tpl.render(a=1) == "A"
    assert tpl.render(b=1) == "B"
    assert tpl.render() == "C"


def test_for_loop_index():
    assert render("{% for x in xs %}{{ loop.index }}{{ x }} {% endfor %}", xs="ab") == "1a 2b "


def test_for_loop_last():
    out = render("{% for x in xs %}{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}", xs=[1, 2, 3])
    assert out == "1, 2, 3"


def test_for_else():
    assert render("{% for x in xs %}{{ x }}{% else %}none{% endfor %}", xs=[]) == "none"


def test_default_filter_for_missing():
    assert render('{{ who|default:"anon" }}') == "anon"


def test_default_filter_keeps_zero():
    assert render('{{ count|default:"n/a" }}', count=0) == "0"
    assert render('{{ flag|default:"n/a" }}', flag=False) == "False"


def test_autoescape():
    assert Template("{{ x }}", autoescape=True).render(x="<b>") == "&lt;b&gt;"


def test_autoescape_with_escape_filter_not_double_escaped():
    assert Template("{{ x|escape }}", autoescape=True).render(x="a & b") == "a &amp; b"


def test_unknown_tag_reports_line():
    with pytest.raises(TemplateError, match="line 3"):
        Template("a\nb\n{% frobnicate %}")


def test_unclosed_block_reports_opening_line():
    with pytest.raises(TemplateError, match="line 2: unclosed if block"):
        Template("x\n{% if a %}\ny\nz")


def test_slugify_filter():
    assert render("{{ t|slugify }}", t="Hello World") == "hello-world"
    assert render("{{ n|slugify }}", n=42) == "42"
