"""Code blocks of README.md, so that its commands and snippets are the ones the tests run."""
from __future__ import annotations

import re
import shlex

from tests.support.paths import ROOT


def readme_blocks(heading: str, language: str) -> list[str]:
    """The ```language blocks of the README section that starts with `heading` (up to the next heading)."""
    text = (ROOT / "README.md").read_text()
    start = text.index(heading)
    following = re.search(r"\n#{1,3} ", text[start + len(heading):])
    section = text[start:start + len(heading) + (following.start() if following else len(text))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a bash block (continuation lines joined), each split into words."""
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]
