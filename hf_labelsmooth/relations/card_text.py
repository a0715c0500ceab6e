"""The one way an untrusted value (from a config.json, a user, a path) enters a model card.

A card is Markdown with a YAML header, rendered by the Hub. A method name, a label, a base model or a dataset may come
from a downloaded config.json or a folder name: written raw, a newline and ``---`` would start new YAML or Markdown
blocks, ``<script>`` would reach the HTML sanitizer, ``|`` would break a table. Every such value goes through
`literal` (Markdown text), `code_string` (a string literal inside a code block) or `hub_id` (metadata: Hub repo ids
only), and nowhere else.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|$~])")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
MAX_LENGTH = 300


def plain(value: Any) -> str:
    """`value` as one line of text: whitespace runs (newlines included) become one space, control and
    bidirectional-override characters are dropped, and the text is cut at `MAX_LENGTH` characters."""
    text = "".join(c for c in str(value) if c not in BIDI_CONTROLS and unicodedata.category(c) != "Cc" or c.isspace())
    text = " ".join(text.split())
    return text if len(text) <= MAX_LENGTH else text[:MAX_LENGTH - 1] + "…"


def literal(value: Any) -> str:
    """`value` as literal inline Markdown text: one line (`plain`), every Markdown / HTML special character
    backslash-escaped (``|`` keeps tables whole, ``<`` no HTML, ``$`` no math).

    Being one line, the text cannot open a block (a heading, a list, a YAML header) as long as templates never put
    a value at the start of a line: cards place them in table cells and after fixed words."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", plain(value))


def code_string(value: Any) -> str:
    """`value` as a double-quoted Python string literal on one line, safe inside a fenced code block."""
    return json.dumps(plain(value))


def hub_id(value: Any) -> str | None:
    """`value` when it is a Hub repo id (``name`` or ``owner/name``), else None: local folders, marked names
    (``"digits (local)"``), paths and free text never reach card metadata."""
    if not isinstance(value, str) or not HUB_ID.fullmatch(value) or "--" in value or ".." in value:
        return None
    return None if value.endswith((".", "-")) else value
