from textkit import camel_to_snake, kebab_case, snake_to_camel, title_case


def test_camel_to_snake_simple():
    assert camel_to_snake("parseValue") == "parse_value"


def test_camel_to_snake_acronyms():
    assert camel_to_snake("HTTPServerError") == "http_server_error"
    assert camel_to_snake("parseURLValue") == "parse_url_value"


def test_snake_to_camel():
    assert snake_to_camel("http_server_error") == "httpServerError"
    assert snake_to_camel("http_server_error", upper_first=True) == "HttpServerError"


def test_title_case_small_words():
    assert title_case("the lord of the rings") == "The Lord of the Rings"


def test_title_case_last_word_capitalized():
    assert title_case("what to look for") == "What to Look For"


def test_kebab_case():
    assert kebab_case("parseValue") == "parse-value"
    assert kebab_case("snake_case_name") == "snake-case-name"
    assert kebab_case("Two words") == "two-words"
