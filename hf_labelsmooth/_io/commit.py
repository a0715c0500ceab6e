"""One save = one unit: a folder whose record file (JSON) names the sha256 of its data files is its commit.

A save (`commit_folder`), under the folder's lock:

1. finishes a save that was killed after its commit (see below), and removes temporary files of killed saves;
2. writes the new data files under pending names, ``.<name>.<sha256[:16]>.pending``;
3. replaces the record file, which records the data files' sha256 under ``"sha256"``: the commit point;
4. renames the pending data into place, then writes the other files (e.g. a README), which nothing checks.

A kill before step 3 leaves the previous save; after it, the record names the new data, found under its final or
pending name (`read_committed`). The reader checks the sha256, so a folder mixing two saves (or a file replaced by
hand) is refused instead of pairing one save's data with another's record.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .atomic import json_bytes
from .files import directory_lock, fsync_directory, remove_stale, write_file
from .untrusted import read_json

DIGEST_FIELD = "sha256"  # the record's field mapping data file names to their sha256 hex digests
T = TypeVar("T")


def pending_path(path: Path, digest: str) -> Path:
    """Where data with sha256 `digest` waits between its write and its commit."""
    return path.with_name(f".{path.name}.{digest[:16]}.pending")


def write_pending(path: Path, data: bytes) -> None:
    """Write and fsync pending data (no temporary file: the name is one; readers verify the sha256 first)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def recorded_digests(record: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """The record's digests of the data files `names` (file name -> sha256); empty for a record without any."""
    digests, names = record.get(DIGEST_FIELD), set(names)
    return {k: v for k, v in digests.items() if k in names and isinstance(v, str)} \
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


def finish_interrupted(directory: Path, record_file: str, names: Iterable[str]) -> None:
    """Move the pending data files `names` that the record already names into place (a save killed after its
    commit)."""
    try:
        record = read_json(directory / record_file, record_file)
    except (OSError, ValueError):
        return
    for name, digest in recorded_digests(record, names).items():
        pending = pending_path(directory / name, digest)
        if pending.is_file() and file_digest(pending) == digest:
            os.replace(pending, directory / name)


def commit_folder(directory: Path, record_file: str, record: dict[str, Any], data: dict[str, bytes],
                  files: dict[str, bytes], managed: Iterable[str] = ()) -> None:
    """Write a folder as one unit (module docstring); files of `directory` not named here are left alone.

    Args:
        directory: An existing folder.
        record_file: Name of the JSON record (the commit point).
        record: Its content; the ``"sha256"`` of every `data` file is added here.
        data: The files the record commits to (name -> bytes), checked by `read_committed`.
        files: Other files (name -> bytes), written after the commit.
        managed: Further names this kind of folder may hold (earlier saves' data files): their leftovers from
            killed saves are finished or removed too.
    """
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in data.items()}
    names = {record_file, *data, *files, *managed}
    pending = {name: pending_path(directory / name, digest) for name, digest in digests.items()}
    with directory_lock(directory):
        finish_interrupted(directory, record_file, names - {record_file})
        remove_stale(directory, sorted(names))
        try:
            for name, path in pending.items():
                write_pending(path, data[name])
            write_file(directory / record_file, json_bytes({**record, DIGEST_FIELD: digests}))  # the commit point
        except BaseException:  # not committed: the folder keeps the previous save
            for path in pending.values():
                path.unlink(missing_ok=True)
            raise
        try:
            for name, path in pending.items():
                os.replace(path, directory / name)
            for name, content in files.items():
                write_file(directory / name, content)
            fsync_directory(directory)
        except OSError as err:
            raise committed_error(directory, record_file, err, [*files]) from err


def committed_error(directory: Path, record_file: str, err: OSError, files: list[str]) -> OSError:
    """The error of a step after the commit point (disk full, ...): it says the save committed (keeps `err.errno`)."""
    error = OSError(f"Expected the save to {directory} to finish but got {err.strerror or err} after its commit "
                    f"point: the save is committed ({record_file} and its data load as saved; a file still under a "
                    f".pending name is moved into place by the next save or read), only the files written after it "
                    f"({', '.join(files) or 'none'}) may be missing or old. Free space and save again to write them.")
    error.errno = err.errno
    return error


def read_consistent(directory: Path | None, read: Callable[[], T]) -> T:
    """`read()` of a folder written by `commit_folder`; when it fails while a concurrent save changes the folder (the
    record of one save with the data of another, a pending file renamed away), once more under the folder's lock,
    which saves hold for their whole commit (a folder that stays inconsistent fails again, with the same error).

    Args:
        directory: The local folder (None: a download, read once).
        read: Reads the record, then the data it commits to.
    """
    try:
        return read()
    except (ValueError, FileNotFoundError):
        if directory is None or not directory.is_dir():
            raise
        with directory_lock(directory):
            return read()


def read_committed(path: Path, expected: str | None, read: Callable[[Path], tuple[T, str]], *, record_file: str,
                   local: bool = True) -> tuple[T, Path]:
    """The data the record commits to: still pending after a save killed past its commit, else the file at `path`,
    checked against the recorded sha256 `expected` (None: a record written without digests, read unchecked).

    Args:
        path: The data file (local, or downloaded: then no pending file is looked for).
        expected: Its recorded sha256.
        read: Reads a file, returning its content and its sha256.
        record_file: The record's name, for errors.
        local: Whether `path` lies in the folder the save wrote.

    Raises:
        ValueError: The data belongs to another save than the record (interrupted save or hand-copied file).
    """
    if expected is None:
        return read(path)[0], path
    pending = pending_path(path, expected)
    if local and pending.is_file():  # a save killed after its commit: its data waits here
        with contextlib.suppress(ValueError):
            content, digest = read(pending)
            if digest == expected:
                return content, pending
    content, digest = read(path)
    if digest != expected:
        raise ValueError(f"Expected {path.name} with the sha256 recorded in {record_file} ({expected[:12]}...) but "
                         f"got {digest[:12]}... in {path}: the folder mixes files of two saves (an interrupted save "
                         "or a file copied by hand). Re-save it (save_pretrained) or re-download it "
                         "(force_download=True).")
    return content, path
