"""A tiny template engine.

Syntax::

    {{ name }}                  variable, dotted lookups: {{ user.name }}, {{ items.0 }}
    {{ name|upper }}            filters, chained: {{ name|lower|truncate:10 }}
    {{ name|default:"anon" }}   filters may take one argument (quoted string or number)
    {% if cond %}...{% elif other %}...{% else %}...{% endif %}
    {% for x in items %}...{% else %}(empty){% endfor %}   loop.index / loop.first / loop.last
    {# a comment #}

Rendering is strict about syntax (unbalanced blocks raise TemplateError with the line
number) and lenient about data (a missing variable renders as an empty string unless
``strict=True``).
"""

import html
import re

from textkit.slug import slugify

__all__ = ["Template", "TemplateError", "render", "FILTERS"]

_TOKEN = re.compile(r"({{.*?}}|{%.*?%}|{#.*?#})", re.DOTALL)
_FILTER_ARG = re.compile(r"""^(\w+)(?::("(?:[^"\\]|\\.)*"|'[^']*'|-?\d+(?:\.\d+)?))?$""")


class TemplateError(Exception):
    """A template could not be parsed or rendered."""

    def __init__(self, message, line=None):
        self.line = line
        if line is not None:
            message = f"line {line}: {message}"
        super().__init__(message)


class _Undefined:
    """Stands in for a missing variable: renders empty, is falsy, iterates as empty."""

    def __str__(self):
        return ""

    def __bool__(self):
        return False

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


UNDEFINED = _Undefined()


# ---------------------------------------------------------------- filters


def _f_upper(value):
    return str(value).upper()


def _f_lower(value):
    return str(value).lower()


def _f_title(value):
    return str(value).title()


def _f_default(value, fallback=""):
    if value is UNDEFINED or value is None or value == "":
        return fallback
    return value


def _f_length(value):
    try:
        return len(value)
    except TypeError:
        return 0


def _f_join(value, separator=", "):
    return separator.join(str(v) for v in value)


def _f_truncate(value, length=20):
    text = str(value)
    length = int(length)
    if len(text) <= length:
        return text
    return text[: max(length - 3, 0)] + "..."


def _f_escape(value):
    return html.escape(str(value), quote=True)


FILTERS = {
    "upper": _f_upper,
    "lower": _f_lower,
    "title": _f_title,
    "default": _f_default,
    "length": _f_length,
    "join": _f_join,
    "truncate": _f_truncate,
    "escape": _f_escape,
    "slugify": slugify,
}


# ---------------------------------------------------------------- nodes


class _Text:
    def __init__(self, text):
        self.text = text

    def render(self, ctx, out):
        out.append(self.text)


class _Var:
    def __init__(self, expr, filters, line):
        self.expr = expr
        self.filters = filters
        self.line = line

    def render(self, ctx, out):
        value = ctx.resolve(self.expr, self.line)
        escaped = False
        for name, arg in self.filters:
            func = ctx.filters.get(name)
            if func is None:
                raise TemplateError(f"unknown filter {name!r}", self.line)
            value = func(value) if arg is None else func(value, arg)
            escaped = escaped or name == "escape"
        text = str(value)
        if ctx.autoescape and not escaped:
            text = html.escape(text, quote=True)
        out.append(text)


class _If:
    def __init__(self, branches, otherwise):
        self.branches = branches  # [(condition expr, line, body nodes)]
        self.otherwise = otherwise

    def render(self, ctx, out):
        for cond, line, body in self.branches:
            if ctx.truthy(cond, line):
                _render_nodes(body, ctx, out)
                return
        _render_nodes(self.otherwise, ctx, out)


class _For:
    def __init__(self, var, iterable, line, body, empty):
        self.var = var
        self.iterable = iterable
        self.line = line
        self.body = body
        self.empty = empty

    def render(self, ctx, out):
        items = list(ctx.resolve(self.iterable, self.line))
        if not items:
            _render_nodes(self.empty, ctx, out)
            return
        for index, item in enumerate(items):
            loop = {
                "index": index + 1,
                "index0": index,
                "first": index == 0,
                "last": index == len(items) - 1,
                "length": len(items),
            }
            ctx.push({self.var: item, "loop": loop})
            try:
                _render_nodes(self.body, ctx, out)
            finally:
                ctx.pop()


def _render_nodes(nodes, ctx, out):
    for node in nodes:
        node.render(ctx, out)


# ---------------------------------------------------------------- context


class _Context:
    def __init__(self, data, filters, strict, autoescape):
        self.scopes = [data]
        self.filters = filters
        self.strict = strict
        self.autoescape = autoescape

    def push(self, scope):
        self.scopes.append(scope)

    def pop(self):
        self.scopes.pop()

    def lookup(self, name):
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return UNDEFINED

    def resolve(self, expr, line):
        expr = expr.strip()
        if expr.startswith(("'", '"')) and expr.endswith(expr[0]) and len(expr) >= 2:
            return expr[1:-1]
        if re.fullmatch(r"-?\d+", expr):
            return int(expr)
        head, *rest = expr.split(".")
        value = self.lookup(head)
        for part in rest:
            value = _get_attr_or_item(value, part)
        if value is UNDEFINED and self.strict:
            raise TemplateError(f"undefined variable {expr!r}", line)
        return value

    def truthy(self, cond, line):
        cond = cond.strip()
        negate = False
        if cond.startswith("not "):
            negate = True
            cond = cond[4:]
        value = bool(self.resolve(cond, line))
        return not value if negate else value


def _get_attr_or_item(value, part):
    if value is UNDEFINED:
        return UNDEFINED
    if isinstance(value, dict):
        return value.get(part, UNDEFINED)
    if isinstance(value, (list, tuple)) and part.isdigit():
        index = int(part)
        return value[index] if index < len(value) else UNDEFINED
    return getattr(value, part, UNDEFINED)


# ---------------------------------------------------------------- parser


def _parse_filters(parts, line):
    filters = []
    for raw in parts:
        match = _FILTER_ARG.match(raw.strip())
        if not match:
            raise TemplateError(f"bad filter expression {raw.strip()!r}", line)
        name, arg = match.group(1), match.group(2)
        if arg is not None:
            if arg[0] in "\"'":
                arg = arg[1:-1]
            elif "." in arg:
                arg = float(arg)
            else:
                arg = int(arg)
        filters.append((name, arg))
    return filters


def _tokenize(source):
    line = 1
    for piece in _TOKEN.split(source):
        if piece:
            yield piece, line
            line += piece.count("\n")


def _parse(source):
    root = []
    stack = [("root", root, None, 1)]  # (kind, current body, node being built, line)
    for piece, line in _tokenize(source):
        body = stack[-1][1]
        if piece.startswith("{#"):
            continue
        if piece.startswith("{{"):
            expr, *filters = piece[2:-2].split("|")
            if not expr.strip():
                raise TemplateError("empty variable tag", line)
            body.append(_Var(expr.strip(), _parse_filters(filters, line), line))
            continue
        if not piece.startswith("{%"):
            body.append(_Text(piece))
            continue
        words = piece[2:-2].split()
        if not words:
            raise TemplateError("empty block tag", line)
        tag = words[0]
        if tag == "if":
            node = _If([(" ".join(words[1:]), line, [])], [])
            body.append(node)
            stack.append(("if", node.branches[0][2], node, line))
        elif tag == "elif":
            kind, _, node, _ = stack.pop()
            if kind != "if":
                raise TemplateError("elif outside of an if block", line)
            node.branches.append((" ".join(words[1:]), line, []))
            stack.append(("if", node.branches[-1][2], node, line))
        elif tag == "else":
            kind, _, node, _ = stack.pop()
            if kind == "if":
                stack.append(("else", node.otherwise, node, line))
            elif kind == "for":
                stack.append(("forelse", node.empty, node, line))
            else:
                raise TemplateError("else outside of an if or for block", line)
        elif tag == "endif":
            kind = stack.pop()[0]
            if kind not in ("if", "else"):
                raise TemplateError("endif without a matching if", line)
        elif tag == "for":
            if len(words) != 4 or words[2] != "in":
                raise TemplateError("for tag must read 'for NAME in EXPR'", line)
            node = _For(words[1], words[3], line, [], [])
            body.append(node)
            stack.append(("for", node.body, node, line))
        elif tag == "endfor":
            kind = stack.pop()[0]
            if kind not in ("for", "forelse"):
                raise TemplateError("endfor without a matching for", line)
        else:
            raise TemplateError(f"unknown tag {tag!r}", line)
    if len(stack) > 1:
        kind, _, _, line = stack[-1]
        raise TemplateError(f"unclosed {kind.replace('forelse', 'for').replace('else', 'if')} block", line)
    return root


class Template:
    """A parsed template; render it many times with different data."""

    def __init__(self, source, *, strict=False, autoescape=False, filters=None):
        self.source = source
        self.strict = strict
        self.autoescape = autoescape
        self.filters = dict(FILTERS)
        if filters:
            self.filters.update(filters)
        self.nodes = _parse(source)

    def render(self, data=None, **kwargs):
        scope = dict(data or {})
        scope.update(kwargs)
        ctx = _Context(scope, self.filters, self.strict, self.autoescape)
        out = []
        _render_nodes(self.nodes, ctx, out)
        return "".join(out)


def render(source, data=None, **kwargs):
    """Parse and render in one call."""
    return Template(source).render(data, **kwargs)
