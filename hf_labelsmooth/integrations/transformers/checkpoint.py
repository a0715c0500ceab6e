"""The Trainer's loss checkpoint, in one place: what a checkpoint folder holds for the loss, how it is written, read
back and checked before a resume.

Two safetensors files beside the Trainer's own: ``relation_loss.safetensors`` (`loss.state_dict()`, the global value
of every declared state, with the method in its metadata) and, for a learnable matrix,
``relation_optimizer.safetensors`` (its optimizer's tensors; hyper-parameters, scalars and schedule as JSON
metadata). timm keeps the same `loss.state_dict()` in its checkpoint's ``task_state["criterion"]`` instead: train.py
writes one ``.pth.tar`` per checkpoint and its saver knows no other files.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ...losses.base import RelationLoss
from ..._io import write_tensors
from .checkpoint_folders import LOSS_STATE_FILE, OPTIMIZER_STATE_FILE, TRAINER_STATE, folder_defect, incomplete, \
    read_state, record, resume_fix
from .relation_optimizer import RelationOptimizer

logger = logging.getLogger(__name__)

__all__ = ["LOSS_STATE_FILE", "OPTIMIZER_STATE_FILE", "LossCheckpoint", "check_resumable", "checkpoint_method",
           "load_loss_state", "load_optimizer_state", "save_loss_state", "save_optimizer_state"]


class LossCheckpoint:
    """Save, load and check the loss state (and the matrix's optimizer) of a `LabelSmoothingTrainer` checkpoint.

    Args:
        loss: The trainer's loss.
        optimizer: Returns the matrix's optimizer (None for losses without parameters, or before it exists).
    """

    def __init__(self, loss: RelationLoss, optimizer: Callable[[], RelationOptimizer | None]) -> None:
        self.loss, self._optimizer = loss, optimizer

    def save(self, directory: str | os.PathLike, should_save: bool, step: int | None = None) -> None:
        """Sum the per-process statistics (collective: every rank calls it), then write both files on `should_save`,
        recording the Trainer's `step` (its ``global_step``) and the tensors' digest in each."""
        self.loss.consolidate_states()
        optimizer = self._optimizer()
        if should_save:
            save_loss_state(self.loss, directory, step)
            if optimizer is not None:
                save_optimizer_state(optimizer, directory, step)

    def load(self, checkpoint: str) -> None:
        """Restore both files of `checkpoint` (a missing one is logged: that part restarts)."""
        if not load_loss_state(self.loss, checkpoint):
            logger.warning("No %s in %s: the %s loss restarts from its initial state.", LOSS_STATE_FILE, checkpoint,
                           self.loss.spec.name)
        optimizer = self._optimizer()
        if optimizer is not None and not load_optimizer_state(optimizer, checkpoint):
            logger.warning("No %s in %s: the matrix's optimizer restarts.", OPTIMIZER_STATE_FILE, checkpoint)

    def load_best(self, checkpoint: str) -> None:
        """The loss state of the best checkpoint, so that the saved matrix is the best one's."""
        if not load_loss_state(self.loss, checkpoint):
            logger.warning("No %s in %s: the saved matrix is the last step's, not the best checkpoint's.",
                           LOSS_STATE_FILE, checkpoint)

    def defect(self, folder: Path) -> str | None:
        """Why `folder` cannot resume this loss (`checkpoint_folders.folder_defect`; None: resumable)."""
        return folder_defect(folder, self.loss.check_states)

    def check_resumable(self, checkpoint: str | os.PathLike) -> None:
        """Raise, before any work, when `checkpoint` cannot resume this loss (`defect`, then `check_resumable`)."""
        folder = Path(checkpoint)
        reason = self.defect(folder)
        if reason is not None:
            raise ValueError(f"Expected a complete checkpoint whose loss files match its {TRAINER_STATE} at {folder} "
                             f"but got {reason}. {resume_fix(folder, self.defect)}")
        check_resumable(checkpoint, self.loss.spec.name, self.loss)
        if self.loss.spec.requires_optimizer and not (folder / OPTIMIZER_STATE_FILE).is_file():
            raise ValueError(f"Expected {folder / OPTIMIZER_STATE_FILE} to resume the {self.loss.spec.name!r} "
                             "matrix's optimizer but got no such file: the checkpoint comes from an earlier "
                             "hf_labelsmooth, which kept the matrix in the model's optimizer. Resume it with that "
                             "version or start a new run.")


def save_loss_state(loss: RelationLoss, directory: str | os.PathLike, step: int | None = None) -> Path:
    """Write `loss.state_dict()` to ``relation_loss.safetensors`` (atomically) in `directory`, recording `step`."""
    path = Path(directory) / LOSS_STATE_FILE
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in loss.state_dict().items()}
    write_tensors(path, tensors, {"method": loss.spec.name, "alpha": str(loss.alpha), **record(tensors, step)})
    return path


def load_loss_state(loss: RelationLoss, directory: str | os.PathLike) -> bool:
    """Restore the loss from ``relation_loss.safetensors`` in `directory`; False when the file is absent.

    The file holds the global value of every declared state (`RelationLoss.consolidate_states` ran before the save);
    ranks other than 0 reset theirs (`keep_states_on_rank_zero`), so the global state is counted once. A corrupt file
    or refused values raise naming the file.
    """
    path = Path(directory) / LOSS_STATE_FILE
    if not path.is_file():
        return False
    state, _ = read_state(path)
    loss.check_states(str(path), state)
    device = next(iter(loss.state_dict().values()), torch.empty(0)).device
    loss.load_state_dict({k: v.to(device) for k, v in state.items()})
    loss.keep_states_on_rank_zero()
    return True


def save_optimizer_state(optimizer: RelationOptimizer, directory: str | os.PathLike, step: int | None = None
                         ) -> Path:
    """Write the matrix's optimizer state and schedule to ``relation_optimizer.safetensors`` in `directory`."""
    state = optimizer.optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{index}.{key}"] = value
    scheduler = optimizer.scheduler
    metadata = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars),
                "scheduler": json.dumps(None if scheduler is None else scheduler.state_dict()),
                **record(tensors, step)}
    path = Path(directory) / OPTIMIZER_STATE_FILE
    write_tensors(path, tensors, metadata)
    return path


def load_optimizer_state(optimizer: RelationOptimizer, directory: str | os.PathLike) -> bool:
    """Restore what `save_optimizer_state` wrote; False when the file is absent."""
    path = Path(directory) / OPTIMIZER_STATE_FILE
    if not path.is_file():
        return False
    tensors, metadata = read_state(path)
    entries: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *json.loads(metadata["scalars"]).items()]:
        index, key = name.split(".", 1)
        entries.setdefault(int(index), {})[key] = value
    groups = json.loads(metadata["param_groups"])
    for group in groups:  # JSON turned tuples into lists
        group.update({k: tuple(v) for k, v in group.items() if k == "betas" and isinstance(v, list)})
    optimizer.optimizer.load_state_dict({"state": entries, "param_groups": groups})
    schedule = json.loads(metadata["scheduler"])
    if optimizer.scheduler is not None and schedule is not None:
        optimizer.scheduler.load_state_dict(schedule)
    return True


def checkpoint_method(checkpoint: str | os.PathLike) -> str | None:
    """The method recorded in a checkpoint's ``relation_loss.safetensors`` (None without the file)."""
    path = Path(checkpoint) / LOSS_STATE_FILE
    return read_state(path)[1].get("method") if path.is_file() else None


def check_resumable(checkpoint: str | os.PathLike, method: str, loss: RelationLoss | None = None) -> None:
    """Raise, before any work, when `checkpoint` was not written by a `method` run (with `loss`'s state shapes).

    Resuming another method's checkpoint would fail deep in the optimizer ("different number of parameter
    groups") or silently mix two losses.

    Raises:
        ValueError: Naming the checkpoint's method and the fixes (a good earlier checkpoint of the same
            ``output_dir``, a new ``--output_dir`` or the checkpoint's method; never deleting checkpoints).
    """
    path = Path(checkpoint) / LOSS_STATE_FILE

    def other_run(folder: Path) -> str | None:
        return incomplete(folder) or (None if checkpoint_method(folder) in (method, None) else "another method")

    fix = f"{resume_fix(checkpoint, other_run)} Or resume with that run's --label_smoothing_method."
    found = checkpoint_method(checkpoint)
    if found is None:
        if loss is not None and loss.spec.requires_optimizer:
            raise ValueError(f"Expected {path} to resume the {method!r} loss (its matrix is trained) but got "
                             f"no such file: the checkpoint was not written by LabelSmoothingTrainer. {fix}")
        return
    if found != method:
        raise ValueError(f"Expected checkpoint {checkpoint} to come from a {method!r} run but it holds the loss "
                         f"state of a {found!r} run. {fix}")
    if loss is not None:
        shapes = {key: tuple(value.shape) for key, value in read_state(path)[0].items()}
        expected = {key: tuple(value.shape) for key, value in loss.state_dict().items()}
        if shapes != expected:
            raise ValueError(f"Expected the {method!r} loss state {expected} in {path} but got {shapes} (another "
                             f"number of classes or --relation_top_n). {fix}")
