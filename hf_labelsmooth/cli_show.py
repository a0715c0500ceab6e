"""What ``hf-labelsmooth show`` reads for its argument: a local folder at once when the argument looks local, and
the matrix of a Trainer checkpoint folder (rebuilt from its ``relation_loss.safetensors``)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_relations", "check_local_argument", "looks_local"]

_CHECKPOINT = re.compile(r"checkpoint-\d+")


def looks_local(text: str) -> bool:
    """Whether `text` names a local path: it exists, starts with ``.``, ``/`` or ``~``, or its parent folder exists.

    A Hub id ``user/name`` whose ``user`` is also a local folder is read as local: pass ``./user`` or rename it.
    """
    if text.startswith((".", "/", "~")) or os.path.exists(text):
        return True
    parent = os.path.dirname(text.rstrip("/"))
    return bool(parent) and os.path.isdir(os.path.expanduser(parent))


def check_local_argument(text: str) -> Path | None:
    """The local folder `text` names (None when it is a Hub repo id).

    Raises:
        FileNotFoundError: A local-looking path that does not exist (naming the folders beside it), at once.
    """
    if not looks_local(text):
        return None
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    parent = path.parent if str(path.parent) else Path(".")
    near = sorted(p.name for p in parent.iterdir() if p.is_dir())[:10] if parent.is_dir() else []
    beside = f" Folders in {parent}: {', '.join(near)}." if near else ""
    raise FileNotFoundError(f"Expected a matrix folder, a saved model or a checkpoint but got {text!r}: no such "
                            f"local folder (read as local, not as a Hub repo).{beside}")


def _label_names(config: dict[str, Any], k: int) -> list[str]:
    id2label = config.get("id2label") or {}
    return [str(id2label.get(str(i), id2label.get(i, i))) for i in range(k)]


def checkpoint_relations(path: Path) -> Any | None:
    """The matrix a Trainer checkpoint folder holds (its loss state + the model's class names), else None.

    Raises:
        FileNotFoundError: A checkpoint folder without loss state (a ce / ls run, or not LabelSmoothingTrainer's).
    """
    from .integrations.transformers.checkpoint import LOSS_STATE_FILE

    state_file = path / LOSS_STATE_FILE
    if not _CHECKPOINT.fullmatch(path.name) and not state_file.is_file():
        return None
    run = path.parent / "relation_matrix"
    hint = f" The run's final matrix: hf-labelsmooth show {path.parent}." if run.is_dir() else ""
    if not state_file.is_file():
        raise FileNotFoundError(f"Expected a class-relation matrix in {path} but got a Trainer checkpoint without "
                                f"{LOSS_STATE_FILE}: its run learns no matrix.{hint}")
    from .integrations.transformers.checkpoint_folders import read_state
    from .losses import create_loss, get_loss_class
    from .relations.save import relations_from_loss

    state, meta = read_state(state_file)  # a zero-byte or truncated file: an error naming it
    method = meta.get("method", "")
    if method and not get_loss_class(method).learns_relations:
        raise FileNotFoundError(f"Expected a class-relation matrix in {path} but got a Trainer checkpoint of a "
                                f"{method!r} run, which learns no matrix.{hint}")
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    k = int(config.get("num_labels") or len(config.get("id2label") or {}) or 0)
    try:
        loss = create_loss(meta["method"], num_classes=k, alpha=float(meta["alpha"]))
        loss.load_state_dict(state)
        return relations_from_loss(loss, _label_names(config, k))
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise FileNotFoundError(f"Expected a class-relation matrix in {path} but got a Trainer checkpoint whose "
                                f"loss state cannot be read back as one ({type(err).__name__}: {err}).{hint}") \
            from None
