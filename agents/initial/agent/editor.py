"""The file editor tool: view a file or directory, create a file, or replace a file's whole content."""

from pathlib import Path

SCHEMA = {
    "name": "editor",
    "description": "View, create or edit files. `view` shows a file with line numbers (long output is "
    "truncated) or lists a directory; `create` writes a new file; `edit` replaces the whole content "
    "of an existing file with `file_text`.",
    "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "create", "edit"]},
            "path": {"type": "string", "description": "File path, relative to the repository."},
            "file_text": {"type": "string", "description": "Full new content (create / edit)."},
        },
        "required": ["command", "path"],
    },
}


def run(repo: Path, command: str, path: str, file_text: str | None = None, **extra) -> str:
    target = Path(path) if Path(path).is_absolute() else Path(repo) / path
    if command == "view":
        return view(target)
    if command == "create":
        if target.exists():
            return f"Error: {path} already exists; use `edit` to replace its content."
        return write(target, file_text)
    if command == "edit":
        if not target.is_file():
            return f"Error: {path} is not an existing file; use `create`."
        return write(target, file_text)
    return f"Error: unknown editor command {command!r}"


def view(target: Path) -> str:
    if target.is_dir():  # non-hidden entries, two levels deep
        entries = sorted(p.relative_to(target).as_posix() for p in [*target.glob("*"), *target.glob("*/*")])
        return "\n".join(e for e in entries if "/." not in "/" + e) or "(empty directory)"
    if not target.is_file():
        return f"Error: {target} does not exist."
    lines = target.read_text(errors="replace").splitlines()
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, 1))


def write(target: Path, file_text: str | None) -> str:
    if file_text is None:
        return "Error: `file_text` is required."
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(file_text)
    return f"Wrote {target.name} ({len(file_text.splitlines())} lines)."
