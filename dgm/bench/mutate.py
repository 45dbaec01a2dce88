"""Procedural bugs: AST-located, text-applied mutations of Python source (for `dgm tasks synth`).

The AST finds where a mutation can go; the change itself is a splice of the original bytes, so
the gold patch (the revert) touches exactly the mutated tokens and keeps the file's formatting.

    sites = find_mutations("pkg/mod.py", source)      # every mutation this file offers
    mutated = apply_mutations(source, [sites[3]])     # a single bug; two sites = a multi-hunk bug

Operators (the `operator` field): compare_swap, arith_swap, off_by_one, negate_condition,
drop_condition, change_constant, change_default, swap_arguments, drop_statement.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

OPERATORS = ("compare_swap", "arith_swap", "off_by_one", "negate_condition", "drop_condition",
             "change_constant", "change_default", "swap_arguments", "drop_statement")

# operator class -> (regex that finds its token in the source between the operands, replacement)
_COMPARE = {
    ast.Lt: (r"(?<![<>=!])<(?![<=>])", "<="), ast.LtE: (r"<=", "<"),
    ast.Gt: (r"(?<![<>=!-])>(?![>=])", ">="), ast.GtE: (r">=", ">"),
    ast.Eq: (r"==", "!="), ast.NotEq: (r"!=", "=="),
    ast.Is: (r"\bis\b(?!\s+not\b)", "is not"), ast.IsNot: (r"\bis\s+not\b", "is"),
    ast.In: (r"(?<!not )\bin\b", "not in"), ast.NotIn: (r"\bnot\s+in\b", "in"),
}
_ARITH = {
    ast.Add: (r"(?<![+=])\+(?![+=])", "-"), ast.Sub: (r"(?<![-=])-(?![-=>])", "+"),
    ast.Mult: (r"(?<!\*)\*(?![*=])", "//"), ast.FloorDiv: (r"//(?!=)", "/"), ast.Div: (r"(?<!/)/(?![/=])", "*"),
    ast.Mod: (r"%(?!=)", "//"), ast.LShift: (r"<<", ">>"), ast.RShift: (r">>", "<<"),
    ast.BitAnd: (r"&", "|"), ast.BitOr: (r"\|", "&"),
}
_AUG = {ast.Add: ("+=", "-="), ast.Sub: ("-=", "+="), ast.Mult: ("*=", "//="), ast.BitOr: ("|=", "&="),
        ast.BitAnd: ("&=", "|=")}
_DROPPABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise, ast.Continue, ast.Break)


@dataclass(frozen=True)
class Edit:
    start: int  # byte offsets into the UTF-8 source
    end: int
    text: bytes


@dataclass(frozen=True)
class Mutation:
    path: str  # file path relative to the package root
    operator: str  # one of OPERATORS
    line: int  # first line touched (1-based), for spreading pairs apart; never shown to an agent
    edit: Edit

    @property
    def key(self) -> str:
        return f"{self.path}:{self.edit.start}:{self.edit.end}:{self.edit.text.decode('utf-8', 'replace')}"


def apply_mutations(source: str, mutations: list[Mutation]) -> str:
    """The source with every mutation's edit spliced in (edits must not overlap)."""
    data = source.encode("utf-8")
    for m in sorted(mutations, key=lambda m: m.edit.start, reverse=True):
        data = data[:m.edit.start] + m.edit.text + data[m.edit.end:]
    return data.decode("utf-8")


def find_mutations(path: str, source: str) -> list[Mutation]:
    """Every mutation of `source` whose result still parses and differs from the original, in file order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    finder = _Finder(path, source.encode("utf-8"))
    finder.visit(tree)
    found, seen = [], set()
    for mutation in finder.found:
        if mutation.key in seen or not _still_parses(source, mutation):
            continue
        seen.add(mutation.key)
        found.append(mutation)
    return sorted(found, key=lambda m: (m.edit.start, m.operator))


def _still_parses(source: str, mutation: Mutation) -> bool:
    try:
        mutated = apply_mutations(source, [mutation])
        ast.parse(mutated)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return False
    return mutated != source


class _Finder(ast.NodeVisitor):
    """Collects candidate mutations; skips docstrings, f-strings, annotations and `if __name__` blocks."""

    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data
        self.line_starts = [0]
        for i, byte in enumerate(data):
            if byte == 0x0A:
                self.line_starts.append(i + 1)
        self.found: list[Mutation] = []
        self.in_index = 0  # > 0 inside slices/indices/range() arguments: constants there get off-by-one instead

    # ------------------------------------------------------------ positions

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def text(self, node: ast.AST) -> bytes:
        start, end = self.span(node)
        return self.data[start:end]

    def add(self, operator: str, node: ast.AST, start: int, end: int, text: str | bytes) -> None:
        replacement = text.encode("utf-8") if isinstance(text, str) else text
        self.found.append(Mutation(self.path, operator, node.lineno, Edit(start, end, replacement)))

    def replace_node(self, operator: str, node: ast.AST, text: str | bytes) -> None:
        self.add(operator, node, *self.span(node), text)

    def token_between(self, operator: str, node: ast.AST, left: ast.AST, right: ast.AST, pattern: str,
                      replacement: str) -> None:
        """Replace the operator token in the source between two operands (exactly one match, or nothing)."""
        gap_start, gap_end = self.span(left)[1], self.span(right)[0]
        gap = self.data[gap_start:gap_end].decode("utf-8", "replace")
        if "#" in gap:
            return
        matches = list(re.finditer(pattern, gap))
        if len(matches) == 1:
            m = matches[0]
            prefix = len(gap[:m.start()].encode("utf-8"))
            token_len = len(m.group(0).encode("utf-8"))
            self.add(operator, node, gap_start + prefix, gap_start + prefix + token_len, replacement)

    # ------------------------------------------------------------ skipped regions

    def visit_JoinedStr(self, node):  # f-string pieces are not code an issue would describe
        return

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_If(self, node):
        if _is_main_guard(node) or _is_type_checking(node):
            return
        self.negate(node.test)
        self.generic_visit(node)

    def visit_While(self, node):
        self.negate(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self.negate(node.test)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        self.defaults(node.args)
        self.statements(node.body)
        for child in [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None], *node.body]:
            self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for child in node.body:
            self.visit(child)

    def visit_For(self, node):
        self.statements(node.body)
        self.generic_visit(node)

    # ------------------------------------------------------------ operators

    def visit_Compare(self, node):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if type(op) in _COMPARE:
                pattern, replacement = _COMPARE[type(op)]
                self.token_between("compare_swap", node, operands[i], operands[i + 1], pattern, replacement)
        self.generic_visit(node)

    def visit_BinOp(self, node):
        if type(node.op) in _ARITH and not _is_string_op(node):
            pattern, replacement = _ARITH[type(node.op)]
            self.token_between("arith_swap", node, node.left, node.right, pattern, replacement)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if type(node.op) in _AUG:
            token, replacement = _AUG[type(node.op)]
            self.token_between("arith_swap", node, node.target, node.value, re.escape(token), replacement)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        joiner = " and " if isinstance(node.op, ast.And) else " or "
        parts = [self.text(v).decode("utf-8") for v in node.values]
        if b"\n" not in self.text(node):  # a one-line condition: dropping a part keeps the line structure
            for i in range(len(parts)):
                rest = parts[:i] + parts[i + 1:]
                self.replace_node("drop_condition", node, joiner.join(rest) if len(rest) > 1 else rest[0])
        self.generic_visit(node)

    def visit_Subscript(self, node):
        self.visit(node.value)
        self.in_index += 1
        if isinstance(node.slice, ast.Slice):
            for bound in (node.slice.lower, node.slice.upper):
                if bound is not None:
                    self.off_by_one(bound)
        else:
            self.off_by_one(node.slice)
        self.visit(node.slice)
        self.in_index -= 1

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "range":
            self.in_index += 1
            for arg in node.args[:2]:
                self.off_by_one(arg)
            self.generic_visit(node)
            self.in_index -= 1
            return
        self.swap_arguments(node)
        self.generic_visit(node)

    def visit_Constant(self, node):
        if self.in_index or isinstance(node.value, str | bytes) or node.value is None:
            return
        changed = _changed_constant(node.value)
        if changed is not None:
            self.replace_node("change_constant", node, changed)

    # ------------------------------------------------------------ helpers per operator

    def negate(self, test: ast.AST) -> None:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            self.replace_node("negate_condition", test, self.text(test.operand))
            return
        text = self.text(test).decode("utf-8")
        if "\n" in text:
            return
        simple = isinstance(test, ast.Name | ast.Call | ast.Attribute | ast.Subscript)
        self.replace_node("negate_condition", test, f"not {text}" if simple else f"not ({text})")

    def off_by_one(self, node: ast.AST) -> None:
        value = _int_value(node)
        if value is not None:
            for delta in (1, -1):
                if value + delta != 0 or value > 0:  # x[-1] -> x[0] is fine, x[1] -> x[0] too; skip -1+1 on slices
                    self.replace_node("off_by_one", node, str(value + delta))
        elif isinstance(node, ast.Name | ast.Call | ast.Attribute) or (
                isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.FloorDiv)):
            text = self.text(node).decode("utf-8")
            if "\n" not in text:
                self.replace_node("off_by_one", node, f"{text} + 1")
                self.replace_node("off_by_one", node, f"{text} - 1")

    def defaults(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            if isinstance(default, ast.Constant) and not isinstance(default.value, str | bytes):
                changed = "0" if default.value is None else _changed_constant(default.value)
                if changed is not None:
                    self.replace_node("change_default", default, changed)

    def swap_arguments(self, node: ast.Call) -> None:
        args = node.args
        if len(args) < 2 or any(isinstance(a, ast.Starred) for a in args[:2]):
            return
        first, second = self.text(args[0]), self.text(args[1])
        if first == second or b"\n" in first or b"\n" in second:
            return
        start, _ = self.span(args[0])
        middle_start, end = self.span(args[0])[1], self.span(args[1])[1]
        middle = self.data[middle_start:self.span(args[1])[0]]
        if b"\n" in middle:
            return
        self.add("swap_arguments", node, start, end, second + middle + first)

    def statements(self, body: list[ast.stmt]) -> None:
        """drop_statement candidates: whole-line statements of a block that keeps at least one other."""
        live = [s for s in body if not _is_docstring(s)]
        if len(live) < 2:
            return
        for stmt in live:
            bare_value = isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Call)
            if not isinstance(stmt, _DROPPABLE) or bare_value:
                continue
            start, end = self.span(stmt)
            line_start = self.line_starts[stmt.lineno - 1]
            line_end = self.data.find(b"\n", end)
            line_end = len(self.data) if line_end < 0 else line_end + 1
            before, after = self.data[line_start:start], self.data[end:line_end]
            if before.strip() or (after.strip() and not after.strip().startswith(b"#")):
                continue
            self.add("drop_statement", stmt, line_start, line_end, b"")


def _int_value(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    return None


def _changed_constant(value) -> str | None:
    if isinstance(value, bool):
        return str(not value)
    if isinstance(value, int):
        return "0" if value == 1 else str(value + 1)
    if isinstance(value, float):
        return repr(value * 2) if value else "1.0"
    return None


def _is_string_op(node: ast.BinOp) -> bool:
    """'a' + b and '%s' % x are string building; swapping their operator only raises TypeError."""
    return any(isinstance(side, ast.Constant) and isinstance(side.value, str | bytes) or isinstance(side, ast.JoinedStr)
               for side in (node.left, node.right))


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
