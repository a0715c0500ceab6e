"""File I/O of class-relation artifacts: safetensors + JSON only, one atomic writer, local or Hub folders."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from torch import Tensor

MATRIX_FILE = "relation_matrix.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PNG_FILE = "relation_matrix.png"
TOPK_FILE = "relation_topk.safetensors"
ARTIFACT_DIR = "relation_matrix"  # subfolder beside a saved model
FORMAT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then `os.replace` it into place (mode 0666 less the umask)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write pretty JSON atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, with an error that names the file and the fix when it is missing or corrupt."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"Expected {CONFIG_FILE} at {path} but got no such file. Save with "
                                "ClassRelationMatrix.save_pretrained(dir).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Expected valid JSON in {path} but got a corrupt file ({err}). Re-save or re-download "
                         "it (from_pretrained(..., force_download=True)).") from None
    if not isinstance(data, dict):
        raise ValueError(f"Expected a JSON object in {path} but got {type(data).__name__}.")
    return data


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Read every tensor of a safetensors file; a missing, truncated or corrupt file gives a clear error."""
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"Expected {MATRIX_FILE} at {path} but got no such file.") from None
    try:
        return load(data)
    except Exception as err:  # safetensors raises SafetensorError (and others) on truncated/corrupt headers
        raise ValueError(f"Expected a valid safetensors file at {path} but got a corrupt or truncated file ({err}). "
                         "Re-save or re-download it (from_pretrained(..., force_download=True)).") from None


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
    resolves to its ``relation_matrix/`` subfolder; `subfolder` picks another folder explicitly.

    Raises:
        FileNotFoundError: Neither a directory nor a repo id, or a model without a ``relation_matrix/`` folder.
    """
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
    text = str(path_or_repo)
    if isinstance(path_or_repo, os.PathLike) or local.exists() or text.startswith((".", "/", "~")) or \
            text.count("/") > 1 or "\\" in text:
        raise FileNotFoundError(f"Expected a directory saved by save_pretrained or a Hub repo id but got "
                                f"{str(path_or_repo)!r}, which is not a directory.")
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
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ValueError(f"Expected a relation artifact of format version <= {FORMAT_VERSION} but got {version!r} "
                         f"in {path}. Upgrade hf_labelsmooth or re-save the matrix.")
    return config
