"""File safety: regular files of bounded size on read; locked, fsynced, self-cleaning writes of one file.

Reading never trusts a path: `open_regular` follows symlinks (the Hub cache is made of them) but opens only a
regular file, without blocking (a FIFO), and refuses one larger than the caller's bound (``/dev/zero``, a sparse
file). Writing goes through a temporary file named ``.<name>.<random>.tmp`` beside the target, fsynced, then
`os.replace`d; writers of one folder take an advisory lock on it, so the temporary files of killed writers (the
only ones present while the lock is held) are removed by the next write.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temporary files are still removed
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIXES = ("tmp", "pending")
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """Human name of a non-regular file type (``"a FIFO (named pipe)"``, ...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, max_bytes: int, what: str) -> Iterator[tuple[BinaryIO, int]]:
    """Open `path` for reading as ``(handle, size)`` after checking it is a regular file of at most `max_bytes`.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A directory, device, FIFO or socket, an unreadable file, or one larger than `max_bytes`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"Expected {what} at {path} but got no such file.") from None
    except OSError as err:
        raise ValueError(f"Expected a readable {what} at {path} but got an error opening it ({err.strerror})."
                         ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"Expected {what} at {path} to be a regular file but got {file_kind(info.st_mode)}; "
                             "refusing to read it. Pass the folder written by save_pretrained.")
        raise ValueError(f"Expected {what} at {path} of at most {max_bytes} bytes but got {info.st_size} bytes; "
                         "refusing to read it. Re-save or re-download it (force_download=True).")
    with os.fdopen(fd, "rb") as handle:
        yield handle, info.st_size


def read_exactly(handle: BinaryIO, size: int, path: str | os.PathLike) -> bytes:
    """`size` bytes from `handle`, or a ValueError when the file ends (or changed) before them."""
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"Expected {size} more bytes in {path} but got {len(data)}: the file is truncated or "
                         "changed while read. Re-save or re-download it (force_download=True).")
    return data


def check_output_file(path: str | os.PathLike, example: str = "output") -> Path:
    """`path` as a Path after checking a file can be written there (an existing folder, not a directory itself).

    Args:
        path: The file to write.
        example: A file name suggested in the error when `path` is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Expected a file path to write but got {path}, which is a directory. Name a file in it, "
                         f"e.g. {path / example}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Expected an existing folder to write {path.name} in but got {path.parent}, which "
                                "is not a directory. Create it first or choose another path.")
    return path


def temp_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """Regex of the temporary / pending file names this module writes for the targets `names`."""
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"\.({alternatives})\.[^/\\]+\.({'|'.join(TEMP_SUFFIXES)})")


def remove_stale(directory: Path, names: Iterable[str], keep: Iterable[str] = ()) -> None:
    """Delete the temporary / pending files of targets `names` left in `directory` by killed writers (hold the lock)."""
    pattern, keep = temp_pattern(names), set(keep)
    for entry in os.scandir(directory):
        if pattern.fullmatch(entry.name) and entry.name not in keep and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `directory` (flock on the folder itself: no lock file is created)."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def fsync_directory(directory: Path) -> None:
    """Flush a folder's entries (renames) to disk where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def umask() -> int:
    """The process's umask (read by setting it and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to a fsynced temporary file beside `path`, then `os.replace` it into place (caller holds the lock).

    The file put in place gets mode 0666 less the umask (mkstemp's temporary file is 0600). On any failure the
    temporary file is removed and `path` keeps its previous content.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
