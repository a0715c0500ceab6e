"""One save = one unit: config.json is the commit record of an artifact folder, naming the sha256 of its tensors.

A save, under the folder's lock:

1. finishes a save that was killed after its commit (see below), and removes temporary files of killed saves;
2. writes the new tensors under a pending name, ``.relation_matrix.safetensors.<sha256[:16]>.pending``;
3. replaces config.json (recording the tensors' sha256): the commit point;
4. renames the pending tensors into place, then writes the card and heatmap.

A kill before step 3 leaves the previous save; after it, config.json names the new tensors, found under their
final or pending name. The loader checks the sha256, so a folder mixing two saves (or a file replaced by hand) is
refused instead of pairing a matrix with another save's label names.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from . import io
from .files import directory_lock, fsync_directory, remove_stale, write_file

ARTIFACT_FILES = (*io.TENSOR_FILES, io.CONFIG_FILE, io.CARD_FILE, io.PNG_FILE)


def pending_path(path: Path, digest: str) -> Path:
    """Where tensors with sha256 `digest` wait between their write and their commit."""
    return path.with_name(f".{path.name}.{digest[:16]}.pending")


def write_pending(path: Path, data: bytes) -> None:
    """Write and fsync pending tensors (no temporary file: the name is one; readers verify the sha256 first)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def recorded_digests(config: dict[str, Any]) -> dict[str, str]:
    """The ``sha256`` record of a config (tensor file name -> digest); empty for configs written before it."""
    digests = config.get("sha256")
    return {k: v for k, v in digests.items() if k in io.TENSOR_FILES and isinstance(v, str)} \
        if isinstance(digests, dict) else {}


def file_digest(path: Path) -> str | None:
    """sha256 of a local file, None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def finish_interrupted(directory: Path) -> None:
    """Move the pending tensors that config.json already names into place (a save killed after its commit)."""
    try:
        config = io.read_json(directory / io.CONFIG_FILE)
    except (OSError, ValueError):
        return
    for name, digest in recorded_digests(config).items():
        pending = pending_path(directory / name, digest)
        if pending.is_file() and file_digest(pending) == digest:
            os.replace(pending, directory / name)


def save_folder(directory: Path, tensor_file: str, tensors: bytes, config: dict[str, Any],
                files: dict[str, bytes]) -> None:
    """Write an artifact folder as one unit (module docstring); other files in `directory` are left alone.

    Args:
        directory: An existing folder.
        tensor_file: Name of the safetensors file (``relation_matrix.safetensors`` or ``relation_topk.safetensors``).
        tensors: Its serialised bytes.
        config: The config.json content; its ``sha256`` record is added here.
        files: Card and heatmap files (name -> bytes), written after the commit.
    """
    digest = hashlib.sha256(tensors).hexdigest()
    record = io.json_bytes({**config, "sha256": {tensor_file: digest}})
    pending = pending_path(directory / tensor_file, digest)
    with directory_lock(directory):
        finish_interrupted(directory)
        remove_stale(directory, ARTIFACT_FILES)
        try:
            write_pending(pending, tensors)
            write_file(directory / io.CONFIG_FILE, record)  # the commit point
        except BaseException:  # not committed: the folder keeps the previous save
            pending.unlink(missing_ok=True)
            raise
        os.replace(pending, directory / tensor_file)
        for name, data in files.items():
            write_file(directory / name, data)
        fsync_directory(directory)


def read_committed(folder: io.Folder, tensor_file: str, config: dict[str, Any],
                   check: Callable[[io.TensorSpecs], None]) -> tuple[dict[str, Tensor], Path]:
    """The tensors config.json commits to: those still pending after a save killed past its commit, else the file,
    checked against the recorded sha256 (configs written before that record are read without the check).

    Raises:
        ValueError: The tensors belong to another save than config.json (interrupted save or hand-copied file).
    """
    path = folder.fetch(tensor_file)
    expected = recorded_digests(config).get(tensor_file)
    if expected is None:  # written before the sha256 record existed
        return io.read_tensor_file(path, check)[0], path
    pending = pending_path(path, expected) if folder.local is not None else None
    if pending is not None and pending.is_file():  # a save killed after its commit: its tensors wait here
        with contextlib.suppress(ValueError):
            tensors, digest = io.read_tensor_file(pending, check)
            if digest == expected:
                return tensors, pending
    tensors, digest = io.read_tensor_file(path, check)
    if digest != expected:
        raise ValueError(f"Expected {tensor_file} with the sha256 recorded in config.json ({expected[:12]}...) but "
                         f"got {digest[:12]}... in {path}: the folder mixes files of two saves (an interrupted save "
                         "or a file copied by hand). Re-save it (save_pretrained) or re-download it "
                         "(force_download=True).")
    return tensors, path
