"""Reads of untrusted files: JSON objects and safetensors, each checked before its data is read.

Every read checks the file type and size first (`open_regular`); a safetensors file's header is read and
handed to the caller's check (expected names and shapes) before its data, so no file makes the reader read more than
its header justifies. Only JSON and safetensors are read: never pickle.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import open_regular, read_exactly
from .header import MAX_HEADER_BYTES, TensorSpecs, corrupt, parse_header

if TYPE_CHECKING:
    from torch import Tensor

MAX_JSON_BYTES = 256 << 20  # a JSON file with a million long strings stays far below


def read_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Read a JSON object (a regular file of at most `max_bytes`), with errors that name the file and the fix.

    Args:
        path: The file.
        what: Its name in errors (e.g. ``"config.json"``).
        max_bytes: Larger files are refused before they are read.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a regular file, too large, not UTF-8 JSON, or not a JSON object.
    """
    with open_regular(path, max_bytes, what) as (handle, size):
        raw = read_exactly(handle, size, path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise ValueError(f"Expected valid JSON in {path} but got a corrupt file ({reason}). Re-save or re-download "
                         "it (from_pretrained(..., force_download=True)).") from None
    if not isinstance(data, dict):
        raise ValueError(f"Expected a JSON object in {path} but got {type(data).__name__}.")
    return data


def read_tensor_file(path: str | os.PathLike, check: Callable[[TensorSpecs], None] | None = None
                     ) -> tuple[dict[str, Tensor], str]:
    """Tensors of a safetensors file and the file's sha256, reading its header first.

    The header's tensors go to `check` (which raises on unexpected names or shapes) before any data is read, and
    the file size must be exactly what the header declares.
    """
    tensors, _, digest = read_tensor_record(path, check)
    return tensors, digest


def read_tensor_record(path: str | os.PathLike, check: Callable[[TensorSpecs], None] | None = None
                       ) -> tuple[dict[str, Tensor], dict[str, str], str]:
    """As `read_tensor_file`, with the file's metadata (its header's ``__metadata__``; empty without one).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Naming the file: not a regular file, zero bytes, truncated, or a corrupt header.
    """
    from safetensors.torch import load

    path = Path(path)
    with open_regular(path, sys.maxsize, path.name) as (handle, size):
        if size < 8:
            raise corrupt(path, f"{size} bytes")
        head = read_exactly(handle, 8, path)
        length = int.from_bytes(head, "little")
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise corrupt(path, f"header of {length} bytes in a file of {size}")
        header = read_exactly(handle, length, path)
        specs, end = parse_header(header, path)
        if check is not None:
            check(specs)
        if size != 8 + length + end:
            raise corrupt(path, f"{size} bytes where the header declares {8 + length + end}")
        data = head + header + read_exactly(handle, end, path)
    metadata = json.loads(header).get("__metadata__")
    try:
        tensors = load(data)
    except Exception as err:  # safetensors raises SafetensorError (and others) on inconsistent headers
        raise corrupt(path, str(err)) from None
    metadata = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    return tensors, metadata, hashlib.sha256(data).hexdigest()


def read_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read every tensor of a safetensors file; a missing, truncated or corrupt file gives a clear error."""
    return read_tensor_file(path)[0]
