from agent import editor, tools


def test_view_numbers_lines(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    assert editor.run(tmp_path, "view", "a.py") == "     1\tx = 1\n     2\ty = 2"


def test_view_lists_directories_without_hidden_entries(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("")
    (tmp_path / ".git").mkdir()
    listing = editor.run(tmp_path, "view", ".").splitlines()
    assert listing == ["pkg", "pkg/m.py"]


def test_view_of_missing_file_is_an_error(tmp_path):
    assert editor.run(tmp_path, "view", "nope.py").startswith("Error:")


def test_create_then_edit_replaces_whole_file(tmp_path):
    assert "Wrote" in editor.run(tmp_path, "create", "sub/new.py", file_text="a\n")
    assert editor.run(tmp_path, "create", "sub/new.py", file_text="b\n").startswith("Error:")
    assert "Wrote" in editor.run(tmp_path, "edit", "sub/new.py", file_text="b\nc\n")
    assert (tmp_path / "sub/new.py").read_text() == "b\nc\n"


def test_edit_requires_existing_file_and_text(tmp_path):
    assert editor.run(tmp_path, "edit", "missing.py", file_text="x").startswith("Error:")
    (tmp_path / "f.py").write_text("x")
    assert editor.run(tmp_path, "edit", "f.py").startswith("Error:")
    assert editor.run(tmp_path, "rename", "f.py").startswith("Error: unknown editor command")


def test_long_views_are_truncated_through_run_tool(tmp_path):
    (tmp_path / "long.py").write_text("".join(f"value_{i} = {i}\n" for i in range(3000)))
    out = tools.run_tool(tmp_path, "editor", {"command": "view", "path": "long.py"})
    assert "characters truncated" in out
    assert out.splitlines()[0].endswith("value_0 = 0") and out.endswith("value_2999 = 2999")
