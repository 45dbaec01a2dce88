"""Plain-text tool protocol for models without tool calls (see prompts/text_protocol.md): a fenced block
whose info string names the tool; a ```bash block holds the command, other tools' blocks JSON arguments."""

import json
import re
from pathlib import Path
from string import Template

BLOCK = re.compile(r"^```([A-Za-z_]\w*)[ \t]*\n(.*?)^```", re.S | re.M)


class FormatError(ValueError):
    """The reply has a block for a known tool whose content cannot be read."""


def parse_action(text: str, tool_names: list[str]) -> tuple[str, dict] | None:
    """The first block naming a known tool, as (tool, arguments); None when the reply has none."""
    for match in BLOCK.finditer(text or ""):
        name, body = match.group(1), match.group(2).removesuffix("\n")
        if name not in tool_names:
            continue
        if name == "bash":
            return name, {"command": body}
        try:
            arguments = json.loads(body or "{}")
        except json.JSONDecodeError as exc:
            raise FormatError(f"the ```{name} block is not valid JSON: {exc}") from exc
        if not isinstance(arguments, dict):
            raise FormatError(f"the ```{name} block must hold a JSON object")
        return name, arguments
    return None


def instructions(schemas: list[dict]) -> str:
    template = Template((Path(__file__).parent / "prompts" / "text_protocol.md").read_text())
    listing = "\n".join(f"- {s['name']}: {json.dumps(s)}" for s in schemas)
    return template.safe_substitute(tools=listing)
