"""`RelationOptimizer`: the optimizer and learning-rate schedule of a loss's own parameters under the Trainer.

A learnable matrix (LS++, LLS) lives outside the wrapped model. Under FSDP the model's optimizer and FSDP's
optimizer checkpoints may hold only the wrapped model's parameters, so the matrix has an optimizer of its own: the
Trainer's optimizer class and arguments, `relation_lr` (default `hf_labelsmooth.optim.default_relation_lr` of that
class: a fine-tuning `learning_rate` would leave the matrix uniform) and `relation_weight_decay`, the model's
schedule. The callback averages its gradients across processes once per step, then steps it just before the model's
optimizer. Its state is checkpointed in ``relation_optimizer.safetensors`` (tensors) with JSON metadata
(hyper-parameters, scalars, the schedule).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import TrainingArguments, get_scheduler

from ...losses.base import RelationLoss
from ...optim import default_relation_lr, relation_param_groups
from ..._io import write_tensors

OPTIMIZER_STATE_FILE = "relation_optimizer.safetensors"


class RelationOptimizer:
    """An optimizer over a loss's parameters, with the model's learning-rate schedule.

    Args:
        optimizer: The optimizer (see `for_loss`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.scheduler: Any = None

    @classmethod
    def for_loss(cls, loss: RelationLoss, args: Any, optimizer_cls: type, optimizer_kwargs: dict[str, Any]
                 ) -> "RelationOptimizer | None":
        """The Trainer's optimizer class over `loss`'s parameters (`relation_lr`, `relation_weight_decay`); None
        for losses without parameters. Without `relation_lr`, `default_relation_lr` of the class (Adam-like:
        ``max(learning_rate, 0.05)``, SGD: ``10 × learning_rate``)."""
        lr = default_relation_lr(optimizer_cls, args.learning_rate) if args.relation_lr is None else args.relation_lr
        groups = relation_param_groups(loss, lr=lr, weight_decay=args.relation_weight_decay,
                                       network_weight_decay=args.weight_decay)
        return cls(optimizer_cls(groups, **optimizer_kwargs)) if groups else None

    @property
    def lr(self) -> float:
        """The matrix's learning rate before scheduling."""
        group = self.optimizer.param_groups[0]
        return float(group.get("initial_lr", group["lr"]))

    def schedule(self, args: TrainingArguments, num_training_steps: int, model_scheduler: Any) -> None:
        """The model's schedule (`lr_scheduler_type`, warmup); a constant rate when the model's is ReduceLROnPlateau
        (it steps on evaluation metrics)."""
        if isinstance(model_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler = None
            return
        self.scheduler = get_scheduler(args.lr_scheduler_type, optimizer=self.optimizer,
                                       num_warmup_steps=args.get_warmup_steps(num_training_steps),
                                       num_training_steps=num_training_steps,
                                       # a JSON string is parsed into a dict by TrainingArguments.__post_init__
                                       scheduler_specific_kwargs=cast("dict | None", args.lr_scheduler_kwargs))

    def step(self, scaler: Any = None) -> None:
        """One step; with a loss scaler (fp16) through it: unscaled, skipped on inf, before the model's step whose
        `scaler.update()` then accounts for both."""
        if scaler is not None:
            scaler.step(self.optimizer)
        else:
            self.optimizer.step()

    def step_schedule(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the optimizer state and the schedule to ``relation_optimizer.safetensors`` in `directory`."""
        state = self.optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{index}.{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    scalars[f"{index}.{key}"] = value
        metadata = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars),
                    "scheduler": json.dumps(None if self.scheduler is None else self.scheduler.state_dict())}
        path = Path(directory) / OPTIMIZER_STATE_FILE
        write_tensors(path, tensors, metadata)
        return path

    def load(self, directory: str | os.PathLike) -> bool:
        """Restore what `save` wrote; False when the file is absent."""
        path = Path(directory) / OPTIMIZER_STATE_FILE
        if not path.is_file():
            return False
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        entries: dict[int, dict[str, Any]] = {}
        for name, value in [*load_file(str(path)).items(), *json.loads(metadata["scalars"]).items()]:
            index, key = name.split(".", 1)
            entries.setdefault(int(index), {})[key] = value
        groups = json.loads(metadata["param_groups"])
        for group in groups:  # JSON turned tuples into lists
            group.update({k: tuple(v) for k, v in group.items() if k == "betas" and isinstance(v, list)})
        self.optimizer.load_state_dict({"state": entries, "param_groups": groups})
        schedule = json.loads(metadata["scheduler"])
        if self.scheduler is not None and schedule is not None:
            self.scheduler.load_state_dict(schedule)
        return True


def check_optimizer_checkpoint(checkpoint: str | os.PathLike, loss: RelationLoss) -> None:
    """Raise, before any work, when a checkpoint of a learnable matrix has no ``relation_optimizer.safetensors``:
    it was written before the matrix had its own optimizer (then in ``optimizer.pt``, which would fail to load)."""
    if loss.requires_optimizer and not (Path(checkpoint) / OPTIMIZER_STATE_FILE).is_file():
        raise ValueError(f"Expected {Path(checkpoint) / OPTIMIZER_STATE_FILE} to resume the {loss.name!r} matrix's "
                         "optimizer but got no such file: the checkpoint comes from an earlier hf_labelsmooth, which "
                         "kept the matrix in the model's optimizer. Resume it with that version or start a new run.")
