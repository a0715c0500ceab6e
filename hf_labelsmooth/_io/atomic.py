"""Atomic writes: a file (bytes, JSON, safetensors) or a whole folder replaces its previous version in one step.

A file goes through a fsynced temporary file beside it and `os.replace`, under the folder's advisory lock, which
also removes the temporary files of killed writers (`files`). A folder written by another library is built in a
temporary folder beside its final name, then renamed over it (`atomic_directory`). A folder of several files that
must stay consistent is committed through a record file (`commit`).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import directory_lock, remove_stale, write_file

if TYPE_CHECKING:
    from torch import Tensor


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a fsynced temporary file and `os.replace`, under the folder's lock.

    Temporary files of earlier writers of the same name that were killed are removed first.
    """
    path = Path(path)
    with directory_lock(path.parent):
        remove_stale(path.parent, [path.name])
        write_file(path, data)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; on success it replaces `final` whole (on error it is removed).

    Used for folders written by other libraries (`Dataset.save_to_disk`, `save_pretrained` of a model).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_bytes(data: dict[str, Any]) -> bytes:
    """Pretty UTF-8 JSON with a final newline."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write pretty JSON atomically."""
    atomic_write_bytes(path, json_bytes(data))


def tensor_bytes(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors serialisation of `tensors` (made contiguous)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def write_tensors(path: str | os.PathLike, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Serialise tensors with safetensors (atomically)."""
    atomic_write_bytes(path, tensor_bytes(tensors, metadata))
