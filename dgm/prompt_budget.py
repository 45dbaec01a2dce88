"""Fitting the prompts the framework builds (diagnosis, problem statement) into a context window.

A prompt that does not fit is refused by the server (HTTP 400) and fails the child for nothing;
a real run against a local model with an 8k or 4k window meets this on its first diagnosis. So
the framework measures what it sends against the model's window (configured, or learnt from the
server at preflight) and trims the parts that matter least first: logs, then code, then, as a
last resort, the middle of the whole text.

Tokens are estimated from characters without the model's tokenizer. `CHARS_PER_TOKEN` is on the
safe side for English, code and JSON with the tokenizers of GPT-4o, Claude, Llama and Gemma
(they average 3.5 to 4.5 characters per token on such text).
"""

from __future__ import annotations

from typing import Callable

from dgm.textutil import head_tail

CHARS_PER_TOKEN = 3.0
MARKER_CHARS = 64  # room for head_tail's "[n characters omitted]" line
MIN_PART_CHARS = 500  # a trimmed part keeps at least this much (a log's head and tail still say something)


def prompt_chars(context_tokens: int | None, reserved_tokens: int) -> int | None:
    """Characters a prompt may take in a window of `context_tokens`, keeping `reserved_tokens` free
    (the answer, and any turns the conversation adds). None: the window is unknown, do not trim."""
    if not context_tokens:
        return None
    return max(int((context_tokens - reserved_tokens) * CHARS_PER_TOKEN), MIN_PART_CHARS)


def fit(render: Callable[[dict[str, int]], str], limits: dict[str, int], max_chars: int | None) -> str:
    """`render(limits)` made to fit in `max_chars`.

    `limits` are the character limits of the prompt's parts, in the order they may be cut (first
    cut first). Each is halved, down to MIN_PART_CHARS, before the next is touched; what still does
    not fit loses its middle.
    """
    limits = dict(limits)
    text = render(limits)
    if max_chars is None or len(text) <= max_chars:
        return text
    for name in list(limits):
        while len(text) > max_chars and limits[name] > MIN_PART_CHARS:
            limits[name] = max(limits[name] // 2, MIN_PART_CHARS)
            text = render(limits)
    return head_tail(text, max_chars - MARKER_CHARS) if len(text) > max_chars else text
