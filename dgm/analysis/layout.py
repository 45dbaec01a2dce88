"""A small tidy-tree layout: leaves sit on consecutive columns, a parent centres over its children.

Enough for archive trees of a few hundred nodes, and needs no graphviz. Returns x in [0, leaves-1]
and y = depth (root at 0), so callers can flip or scale as they like.
"""

from __future__ import annotations

from typing import Callable, Iterable


def tidy_layout(roots: Iterable[str], children: Callable[[str], list[str]]) -> dict[str, tuple[float, int]]:
    pos: dict[str, tuple[float, int]] = {}
    next_column = 0.0

    def place(node: str, depth: int) -> float:
        nonlocal next_column
        kids = [k for k in children(node) if k not in pos]
        pos[node] = (0.0, depth)  # reserve, so a malformed cycle cannot recurse forever
        if not kids:
            x = next_column
            next_column += 1
        else:
            xs = [place(k, depth + 1) for k in kids]
            x = (xs[0] + xs[-1]) / 2
        pos[node] = (x, depth)
        return x

    for root in roots:
        place(root, 0)
        next_column += 0.5  # a little air between separate trees
    return pos
