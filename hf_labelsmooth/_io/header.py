"""The safetensors header of an untrusted file: parsed and checked entry by entry before any tensor data is read.

A safetensors file is an 8-byte little-endian header length, a JSON header (per tensor: dtype, shape, data offsets)
and the data. Checking every entry's byte span against its dtype and shape bounds the data the file may hold.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

MAX_HEADER_BYTES = 1 << 20  # a header of a few tensors and short metadata (read limit, not a format rule)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
               "U16": 2, "U8": 1, "BOOL": 1}
TensorSpecs = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (safetensors dtype, shape)


def _counts(values: Any) -> TypeGuard[list[int]]:
    """A JSON list of integers >= 0."""
    return isinstance(values, list) and all(type(x) is int and x >= 0 for x in values)


def corrupt(path: Path, detail: str) -> ValueError:
    """The error of an unreadable safetensors file, naming the fix."""
    return ValueError(f"Expected a valid safetensors file at {path} but got a corrupt or truncated file ({detail}). "
                      "Re-save or re-download it (from_pretrained(..., force_download=True)).")


def parse_header(raw: bytes, path: Path) -> tuple[TensorSpecs, int]:
    """The tensors a safetensors header declares, and the data size it justifies (checked entry by entry)."""
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise corrupt(path, "unreadable header") from None
    if not isinstance(header, dict):
        raise corrupt(path, "header is not a JSON object")
    specs, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        entry = entry if isinstance(entry, dict) else {}
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES or not _counts(shape) or not _counts(offsets) or len(offsets) != 2 or \
                offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise corrupt(path, f"bad header entry for tensor {name!r}")
        specs[name], end = (dtype, tuple(shape)), max(end, offsets[1])
    return specs, end
