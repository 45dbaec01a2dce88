"""Paragraph wrapping and block dedenting."""


def wrap(text, width=70, indent=""):
    """Greedy word wrap. Words longer than the width are put on a line of their own."""
    if width <= len(indent):
        raise ValueError("width must be larger than the indent")
    lines = []
    for paragraph in text.split("\n\n"):
        words = paragraph.split()
        if not words:
            continue
        line = indent + words[0]
        for word in words[1:]:
            if len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                lines.append(line)
                line = indent + word
        lines.append(line)
        lines.append("")
    return "\n".join(lines[:-1])


def dedent_block(text):
    """Remove the common leading whitespace of all non-blank lines."""
    lines = text.splitlines()
    margins = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    margin = min(margins) if margins else 0
    return "\n".join(line[margin:] if line.strip() else "" for line in lines)
