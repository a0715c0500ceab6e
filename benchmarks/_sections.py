"""One `## ` section of a results file rewritten in place, the file's other sections kept (atomic write)."""

from __future__ import annotations

from pathlib import Path

from hf_labelsmooth._io import atomic_write_bytes


def replace_section(text: str, header: str, section: str) -> str:
    """`text` with the section that starts at `header` replaced by `section` (appended when absent)."""
    start = text.find(header)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(header))
    return text[:start] + section + (text[end:] if end >= 0 else "")


def write_section(out: Path, header: str, section: str) -> None:
    """Rewrite `out` with `section` in place of its `header` section (the file is created when absent)."""
    text = out.read_text() if out.exists() else ""
    atomic_write_bytes(out, replace_section(text, header, section).encode())
