"""Where an artifact is: a local folder or a Hub repo, the artifact itself or a saved model holding it.

`resolve_folder` turns what a user passes to `from_pretrained` (a directory, ``user/name``) into a `Folder` whose
files are fetched only when read; a saved model (its own config.json at the root) resolves to its
``relation_matrix/`` subfolder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .._io import read_json
from .constants import ARTIFACT_DIR, CONFIG_FILE, LIBRARY_NAME

HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def is_own_config(path: Path) -> bool:
    """True when `path` is a config.json written by `ClassRelationMatrix.save_pretrained`."""
    try:
        return read_json(path, CONFIG_FILE).get("library_name") == LIBRARY_NAME
    except (OSError, ValueError):
        return False


def is_foreign_config(path: Path) -> bool:
    """True when `path` is a readable JSON config written by another library (e.g. a saved model's config.json)."""
    try:
        return read_json(path, CONFIG_FILE).get("library_name") != LIBRARY_NAME
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
        f"{', '.join(list_losses(learns_relations=True))} learn one: train with one of them, or pass the folder / "
        "repo that holds the matrix.")


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
