"""File I/O of class-relation artifacts: safetensors + JSON only, read as untrusted, one atomic writer, Hub folders.

Every read checks the file type and size first (`files.open_regular`); a safetensors file's header is read and
checked against the config before its data, so no file makes the loader read more than the header justifies.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import Tensor

from .files import directory_lock, open_regular, read_exactly, remove_stale, write_file
from .header import MAX_HEADER_BYTES, TensorSpecs, corrupt, parse_header

MATRIX_FILE = "relation_matrix.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PNG_FILE = "relation_matrix.png"
TOPK_FILE = "relation_topk.safetensors"
TENSOR_FILES = (MATRIX_FILE, TOPK_FILE)
ARTIFACT_DIR = "relation_matrix"  # subfolder beside a saved model
FORMAT_VERSION = 1
MAX_JSON_BYTES = 256 << 20  # a config.json with a million long label names stays far below
HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a fsynced temporary file and `os.replace`, under the folder's lock.

    Temporary files of earlier writers of the same name that were killed are removed first.
    """
    path = Path(path)
    with directory_lock(path.parent):
        remove_stale(path.parent, [path.name])
        write_file(path, data)


def tensor_bytes(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors serialisation of `tensors` (made contiguous)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


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


def write_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Serialise tensors with safetensors (atomically)."""
    atomic_write_bytes(path, tensor_bytes(tensors, metadata))


def json_bytes(data: dict[str, Any]) -> bytes:
    """Pretty UTF-8 JSON with a final newline."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write pretty JSON atomically."""
    atomic_write_bytes(path, json_bytes(data))


def read_json(path: Path, what: str = CONFIG_FILE) -> dict[str, Any]:
    """Read a JSON object (a regular file of at most `MAX_JSON_BYTES`), with errors that name the file and the fix."""
    with open_regular(path, MAX_JSON_BYTES, what) as (handle, size):
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


def read_tensor_file(path: Path, check: Callable[[TensorSpecs], None] | None = None) -> tuple[dict[str, Tensor], str]:
    """Tensors of a safetensors file and the file's sha256, reading its header first.

    The header's tensors go to `check` (expected names and shapes) before any data is read, and the file size
    must be exactly what the header declares.
    """
    from safetensors.torch import load

    with open_regular(path, sys.maxsize, Path(path).name) as (handle, size):
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
    try:
        return load(data), hashlib.sha256(data).hexdigest()
    except Exception as err:  # safetensors raises SafetensorError (and others) on inconsistent headers
        raise corrupt(path, str(err)) from None


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Read every tensor of a safetensors file; a missing, truncated or corrupt file gives a clear error."""
    return read_tensor_file(path)[0]


def is_own_config(path: Path) -> bool:
    """True when `path` is a config.json written by `ClassRelationMatrix.save_pretrained`."""
    try:
        return read_json(path).get("library_name") == "hf_labelsmooth"
    except (OSError, ValueError):
        return False


def is_foreign_config(path: Path) -> bool:
    """True when `path` is a readable JSON config written by another library (e.g. a saved model's config.json)."""
    try:
        return read_json(path).get("library_name") != "hf_labelsmooth"
    except (OSError, ValueError):
        return False


class Folder:
    """A local folder, or a Hub repo folder whose files are downloaded one by one when asked for (`fetch`)."""

    def __init__(self, local: Path | None, repo_id: str | None = None, **hub_kwargs: Any) -> None:
        self.local, self.repo_id, self.hub_kwargs = local, repo_id, hub_kwargs

    def fetch(self, name: str) -> Path:
        """Local path of file `name` of the folder (downloaded from the Hub for a repo)."""
        if self.local is not None:
            return self.local / name
        from huggingface_hub import hf_hub_download

        assert self.repo_id is not None  # a folder is local or a Hub repo
        return Path(hf_hub_download(self.repo_id, name, **self.hub_kwargs))


def no_matrix_error(where: str) -> FileNotFoundError:
    """The error for a model folder or repo that holds no class-relation artifact (e.g. a ce / ls run)."""
    from ..losses.registry import list_losses

    return FileNotFoundError(
        f"Expected a class-relation matrix in {where} (a config.json written by hf_labelsmooth at its root or in "
        f"{ARTIFACT_DIR}/) but got none: it holds a model trained with a method that learns no matrix "
        f"({', '.join(list_losses(learns_relations=False))}), or no artifact at all. Only "
        f"{', '.join(list_losses(learns_relations=True))} learn one: train with one of them "
        "(--label_smoothing_method), or pass the folder / repo that holds the matrix.")


def resolve_folder(path_or_repo: str | os.PathLike, **hub_kwargs: Any) -> Folder:
    """The folder holding an artifact: a local directory, or a Hub repo (files fetched only when read).

    A saved model (a folder or Hub repo whose root config.json is the model's, as a Trainer or script writes it)
    resolves to its ``relation_matrix/`` subfolder; `subfolder` picks another folder explicitly. A name that is
    neither a local directory nor of the form ``user/name`` is refused at once (no Hub request).

    Raises:
        FileNotFoundError: Neither a directory nor a repo id, or a model without a ``relation_matrix/`` folder.
    """
    text = str(path_or_repo)
    if not text.strip():
        raise ValueError("Expected a directory saved by save_pretrained or a Hub repo id but got an empty string.")
    local = Path(path_or_repo)
    if local.is_dir():
        local = local / (hub_kwargs.get("subfolder") or "")
        nested = local / ARTIFACT_DIR
        if not is_own_config(local / CONFIG_FILE):
            if (nested / CONFIG_FILE).is_file():
                return Folder(nested)
            if is_foreign_config(local / CONFIG_FILE):  # a model's config.json and no relation_matrix/
                raise no_matrix_error(str(local))
        return Folder(local)
    if isinstance(path_or_repo, os.PathLike) or local.exists() or not HUB_REPO_ID.fullmatch(text) or \
            text.startswith("."):
        what = "not a directory" if local.exists() else "no such local folder exists"
        raise FileNotFoundError(f"Expected a directory saved by save_pretrained or a Hub repo id (user/name) but got "
                                f"{text!r}: {what}.")
    if hub_kwargs.get("subfolder"):
        return Folder(None, text, **hub_kwargs)
    return hub_artifact_folder(text, hub_kwargs)


def hub_artifact_folder(repo_id: str, hub_kwargs: dict[str, Any]) -> Folder:
    """The repo root when its config.json is an artifact's, else its ``relation_matrix/`` subfolder (a model repo)."""
    from huggingface_hub.errors import RemoteEntryNotFoundError

    root = Folder(None, repo_id, **hub_kwargs)
    try:
        if is_own_config(root.fetch(CONFIG_FILE)):
            return root
    except RemoteEntryNotFoundError:
        pass
    nested = Folder(None, repo_id, **{**hub_kwargs, "subfolder": ARTIFACT_DIR})
    try:
        nested.fetch(CONFIG_FILE)
    except RemoteEntryNotFoundError:
        raise no_matrix_error(f"Hub repo {repo_id!r}") from None
    return nested


def read_config(path: Path) -> dict[str, Any]:
    """Read an artifact's config.json and check it was written by hf_labelsmooth in a known format version."""
    config = read_json(path)
    if config.get("library_name") != "hf_labelsmooth":
        raise ValueError(f"Expected a config.json written by ClassRelationMatrix.save_pretrained (library_name "
                         f"'hf_labelsmooth') but got another one at {path} (a model's config?). Pass the "
                         f"folder that holds the relation matrix artifact (e.g. <output_dir>/{ARTIFACT_DIR}).")
    version = config.get("format_version", 0)
    if type(version) is not int or version < 0:
        raise ValueError(f"Expected `format_version` in {path} to be an integer >= 0 but got {version!r:.80}: the "
                         "file is corrupt or was edited by hand. Re-save it or re-download it (force_download=True).")
    if version > FORMAT_VERSION:
        raise ValueError(f"Expected a relation artifact of format version <= {FORMAT_VERSION} but got {version} "
                         f"in {path}. Upgrade hf_labelsmooth.")
    return config
