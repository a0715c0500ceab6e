"""What a Trainer checkpoint folder must hold to be resumed, and the newest good one to resume from instead.

A folder is resumable when the Trainer's own files are there (``trainer_state.json`` readable, with its
``global_step``; the model's weights) and the loss files (``relation_loss.safetensors``, and
``relation_optimizer.safetensors`` for a trained matrix) are readable, record that same ``global_step`` and the
sha256 of their tensors (`hf_labelsmooth._io.tensors_digest`), and hold tensors the loss accepts. A file copied
from another checkpoint, a folder left half-written by a kill or a corrupt file is refused, naming the one bad folder
and the newest good earlier checkpoint of the same ``output_dir`` (never "delete the checkpoints": the good ones stay).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..._io import read_json, read_tensor_record, tensors_digest

logger = logging.getLogger(__name__)

LOSS_STATE_FILE = "relation_loss.safetensors"
OPTIMIZER_STATE_FILE = "relation_optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME
STEP_KEY, DIGEST_KEY = "global_step", "tensor_sha256"  # the records in each loss file's safetensors metadata
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
           "adapter_model.safetensors", "adapter_model.bin")  # one of them, or FSDP's pytorch_model_fsdp_* folder
_STEP = re.compile(r"^checkpoint-(\d+)$")

Defect = Callable[[Path], "str | None"]  # a folder's defect (None: resumable)


def record(tensors: dict, step: int | None) -> dict[str, str]:
    """The metadata a loss file records about itself: the step it belongs to (when known) and its tensors' digest."""
    return {DIGEST_KEY: tensors_digest(tensors), **({} if step is None else {STEP_KEY: str(step)})}


def read_state(path: Path) -> tuple[dict, dict[str, str]]:
    """Tensors and metadata of a loss file; a zero-byte, truncated or corrupt file raises naming it and its folder."""
    try:
        tensors, metadata, _ = read_tensor_record(path)
    except ValueError:
        raise ValueError(f"Expected a complete {path.name} in checkpoint {path.parent} but got a corrupt or truncated "
                         f"file ({path.stat().st_size} bytes: an interrupted save or a damaged file). Resume from an "
                         f"earlier checkpoint of {path.parent.parent}.") from None
    return tensors, metadata


def trainer_step(folder: Path) -> int:
    """The ``global_step`` of a checkpoint's ``trainer_state.json`` (ValueError / FileNotFoundError: incomplete)."""
    step = read_json(folder / TRAINER_STATE, TRAINER_STATE).get("global_step")
    if type(step) is not int:
        raise ValueError(f"{TRAINER_STATE} without an integer global_step (got {step!r})")
    return step


def incomplete(folder: Path) -> str | None:
    """Why the Trainer's own part of `folder` cannot be resumed (None: complete)."""
    if not folder.is_dir():
        return "no such folder"
    try:
        trainer_step(folder)
    except (OSError, ValueError) as err:
        return f"an incomplete checkpoint (its {TRAINER_STATE} is missing or unreadable: {err})"
    if not any((folder / name).is_file() for name in WEIGHTS) and not any(folder.glob("pytorch_model_fsdp_*")):
        return f"an incomplete checkpoint (no model weights: {WEIGHTS[0]} is missing)"
    return None


def record_defect(path: Path, tensors: dict, metadata: dict[str, str], step: int) -> str | None:
    """Why a loss file's records do not match its checkpoint (None: they match; an old file without records warns)."""
    if STEP_KEY not in metadata or DIGEST_KEY not in metadata:
        logger.warning("%s records no global_step or digest (written before hf_labelsmooth recorded them): it is "
                       "resumed unverified.", path)
        return None
    if metadata[STEP_KEY] != str(step):
        return (f"{path.name} recorded at global_step {metadata[STEP_KEY]} in a checkpoint whose {TRAINER_STATE} "
                f"says {step} (a file copied from another checkpoint)")
    if metadata[DIGEST_KEY] != tensors_digest(tensors):
        return f"{path.name} whose tensors do not match the sha256 it recorded (the file was changed after its save)"
    return None


def earlier_folders(folder: Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders beside `folder` with a smaller step, newest first."""
    match = _STEP.match(folder.name)
    limit = int(match.group(1)) if match else None
    steps = [(int(m.group(1)), p) for p in folder.parent.glob("checkpoint-*") if (m := _STEP.match(p.name))]
    return [p for step, p in sorted(steps, reverse=True) if p.is_dir() and (limit is None or step < limit)]


def resume_fix(folder: str | os.PathLike, defect: Defect) -> str:
    """The fix of a bad checkpoint: the newest good earlier one of its ``output_dir``, else a new ``--output_dir``."""
    folder = Path(folder)
    good = next((p for p in earlier_folders(folder) if defect(p) is None), None)
    if good is None:
        return (f"No earlier checkpoint in {folder.parent} is complete and verified: train into a new --output_dir.")
    return (f"Resume from the newest good earlier checkpoint: --resume_from_checkpoint {good} "
            f"(train(resume_from_checkpoint={str(good)!r})).")


def folder_defect(folder: Path, check_states: Callable[[str, dict], None]) -> str | None:
    """Why `folder` cannot resume a loss: incomplete, a loss file unreadable, recorded at another step than its
    ``trainer_state.json``, changed after its save, or holding values `check_states` (the loss's) refuses."""
    reason = incomplete(folder)
    if reason is not None:
        return reason
    step = trainer_step(folder)
    for name in (LOSS_STATE_FILE, OPTIMIZER_STATE_FILE):
        path = folder / name
        if not path.is_file():
            continue  # a missing file: `checkpoint.check_resumable`
        try:
            tensors, metadata = read_state(path)
        except (OSError, ValueError):
            return f"a corrupt or truncated {name} ({path.stat().st_size} bytes)"
        reason = record_defect(path, tensors, metadata, step)
        if reason is None and name == LOSS_STATE_FILE:
            try:
                check_states(str(path), tensors)
            except ValueError as err:
                reason = f"{name} with values the loss refuses ({str(err).split('. Resume from')[0]})"
        if reason is not None:
            return reason
    return None
