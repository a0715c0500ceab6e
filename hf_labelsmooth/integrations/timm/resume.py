"""Resuming train.py with a relation loss: the loss state in a checkpoint must be the one of that checkpoint's epoch.

`LaunchedTask.get_task_state` records beside ``task_state["criterion"]`` the epoch its state belongs to
(``criterion_epoch``: timm's 0-based epoch, as its ``CheckpointSaver`` writes ``epoch``) and its tensors' sha256
(``criterion_sha256``). `verified_resume`, installed for the run in place of ``timm.task.resume_task_checkpoint``,
checks both before timm restores anything: a ``task_state`` copied from another checkpoint, or changed after its save,
is refused naming the file and the newest good earlier checkpoint beside it. A checkpoint written before these
records resumes with a warning.
"""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any, Callable

import torch

from ..._io import tensors_digest
from .options import LaunchError

logger = logging.getLogger(__name__)

EPOCH_KEY, DIGEST_KEY = "criterion_epoch", "criterion_sha256"
_EPOCH = re.compile(r"^checkpoint-(\d+)\.pth\.tar$")  # CheckpointSaver's recovery-free checkpoint names


def task_record(criterion: dict[str, Any], completed_epochs: int) -> dict[str, Any]:
    """What `LaunchedTask.get_task_state` records about its criterion state (see the module docstring)."""
    return {EPOCH_KEY: completed_epochs - 1, DIGEST_KEY: tensors_digest(criterion)}


def record_defect(task_state: Any, epoch: int, path: Path) -> str | None:
    """Why a checkpoint's ``task_state`` does not belong to its `epoch` (None: it does, or it records nothing)."""
    if not isinstance(task_state, dict) or "criterion" not in task_state:
        return None
    if EPOCH_KEY not in task_state or DIGEST_KEY not in task_state:
        logger.warning("%s records no epoch or digest for its loss state (written before hf_labelsmooth recorded "
                       "them): it is resumed unverified.", path)
        return None
    if task_state[EPOCH_KEY] != epoch:
        return (f"the loss state of epoch {task_state[EPOCH_KEY]} in a checkpoint of epoch {epoch} (a task_state "
                "copied from another checkpoint)")
    if task_state[DIGEST_KEY] != tensors_digest(task_state["criterion"]):
        return "a loss state whose tensors do not match the sha256 it recorded (changed after its save)"
    return None


def checkpoint_defect(path: Path) -> str | None:
    """Why train.py's checkpoint `path` cannot resume the loss (None: it can, as far as the records tell)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # train.py saves its args
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds on a truncated or foreign file
        return f"an unreadable checkpoint ({type(err).__name__})"
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("epoch"), int) \
            or checkpoint.get("version", 1) < 2:
        return None  # not a task checkpoint of CheckpointSaver's current format: timm decides
    return record_defect(checkpoint.get("task_state"), checkpoint["epoch"], path)


def newest_good(path: Path) -> Path | None:
    """The newest ``checkpoint-<epoch>.pth.tar`` beside `path`, older than it, whose loss state verifies."""
    match = _EPOCH.match(path.name)
    limit = int(match.group(1)) if match else None
    epochs = sorted(((int(m.group(1)), p) for p in path.parent.glob("checkpoint-*.pth.tar")
                     if (m := _EPOCH.match(p.name))), reverse=True)
    return next((p for epoch, p in epochs if (limit is None or epoch < limit) and p != path
                 and checkpoint_defect(p) is None), None)


def verified_resume(original: Callable, task: Any, checkpoint_path: Any, *rest: Any, **kwargs: Any) -> Any:
    """``timm.task.resume_task_checkpoint`` after checking the loss state belongs to the checkpoint (raises
    `LaunchError`, naming the file and the newest good earlier checkpoint, before anything is restored)."""
    path = Path(checkpoint_path)
    reason = checkpoint_defect(path) if path.is_file() else None  # a missing file: timm's own error
    if reason is not None:
        good = newest_good(path)
        fix = f"Resume from the newest good earlier checkpoint: --resume {good}" if good is not None else \
            f"No earlier checkpoint in {path.parent} verifies: start a new run (another --output or --experiment)"
        raise LaunchError(f"Expected the loss state of {path} to belong to its epoch but got {reason}. {fix}.")
    return original(task, checkpoint_path, *rest, **kwargs)
