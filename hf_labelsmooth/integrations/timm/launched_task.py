"""The task the launcher gives train.py: `RelationClassificationTask` with epoch boundaries, and the placeholder
that timm's loss factory returns for a relation name until the task replaces it."""
from __future__ import annotations

from typing import Any

import timm.utils
from torch import nn

from .resume import task_record
from .task import RelationClassificationTask

__all__ = ["LaunchedTask", "RelationPlaceholder"]

_EPOCH_SEED_STRIDE = 100_003


class LaunchedTask(RelationClassificationTask):
    """`RelationClassificationTask` with epoch boundaries: reseeding at the start, the loss's epoch end, a counter.

    Args:
        model: The timm model.
        criterion: The relation loss.
        seed: train.py's ``--seed``.
        rank: This process's rank.
        **kwargs: ``device``, ``dtype``, ``verbose`` (as train.py passes them to ``ClassificationTask``) and
            ``update_every`` (optimizer steps, see `RelationClassificationTask`).
    """

    def __init__(self, model: nn.Module, criterion: nn.Module, seed: int, rank: int, **kwargs: Any) -> None:
        super().__init__(model, criterion, **kwargs)
        self.seed, self.rank, self.completed_epochs = seed, rank, 0

    def start_epoch(self) -> None:
        """Reseed torch, numpy and random for the coming epoch (data order, augmentation, Mixup, dropout); record the
        matrix's lr for the epoch."""
        timm.utils.random_seed(self.seed + _EPOCH_SEED_STRIDE * (self.completed_epochs + 1), self.rank)
        self.observe_lr()

    def end_epoch(self) -> None:
        super().end_epoch()
        self.completed_epochs += 1

    def get_task_state(self, module: nn.Module | None = None, ema: bool = False) -> dict[str, Any]:
        state = super().get_task_state(module, ema)
        if not state:
            return state
        return {**state, "completed_epochs": self.completed_epochs,
                **task_record(state["criterion"], self.completed_epochs)}  # checked on resume (`resume`)

    def load_task_state(self, state: dict[str, Any] | None, strict: bool = True, module: nn.Module | None = None,
                        ema: bool = False) -> None:
        super().load_task_state(state, strict, module, ema)
        if state and not ema:
            self.completed_epochs = int(state.get("completed_epochs", 0))


class RelationPlaceholder(nn.Module):
    """What the patched ``create_classification_loss`` returns for a relation name: `LaunchedTask` replaces it."""

    def __init__(self, loss_type: str) -> None:
        super().__init__()
        self.loss_type = loss_type

    def forward(self, *args: Any) -> None:
        raise RuntimeError(f"Expected timm.task.ClassificationTask to replace the {self.loss_type!r} placeholder, but "
                           "the script called it directly: the launcher supports train.py's ClassificationTask.")
