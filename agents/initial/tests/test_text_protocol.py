import pytest

from agent import text_protocol, tools

NAMES = ["bash", "editor", "submit"]


def test_bash_block_holds_the_command():
    reply = "Let me look.\n```bash\nls -la\ngrep -n foo x.py\n```\n"
    assert text_protocol.parse_action(reply, NAMES) == ("bash", {"command": "ls -la\ngrep -n foo x.py"})


def test_other_tools_take_json_arguments():
    reply = 'Viewing.\n```editor\n{"command": "view", "path": "a.py"}\n```'
    assert text_protocol.parse_action(reply, NAMES) == ("editor", {"command": "view", "path": "a.py"})


def test_empty_submit_block_and_no_block():
    assert text_protocol.parse_action("Done.\n```submit\n```", NAMES) == ("submit", {})
    assert text_protocol.parse_action("All done, no block here.", NAMES) is None


def test_unknown_blocks_are_skipped_first_known_block_wins():
    reply = "```python\nprint(1)\n```\n```bash\necho 1\n```\n```bash\necho 2\n```"
    assert text_protocol.parse_action(reply, NAMES) == ("bash", {"command": "echo 1"})


def test_bad_json_is_a_format_error():
    with pytest.raises(text_protocol.FormatError, match="editor"):
        text_protocol.parse_action("```editor\n{view a.py}\n```", NAMES)


def test_instructions_list_every_tool_schema():
    text = text_protocol.instructions(tools.SCHEMAS)
    for name in NAMES:
        assert f"- {name}: " in text
