"""OLS, Online Label Smoothing (SPEC.md "OLS"): R is the average of last period's correct predictions."""
from __future__ import annotations

import torch
from torch import Tensor

from ._registry import register_loss
from .base import RelationLoss
from .functional import cross_entropy, relation_targets

EMPTY_ROW_POLICIES = ("uniform", "keep")


@register_loss("ols")
class OnlineLabelSmoothing(RelationLoss):
    """Loss α·CE(t, p) + (1-α)·H(t @ S, p) with S refreshed from averaged correct predictions (α default 0.5).

    During training, each correctly classified sample adds its detached probabilities to row `argmax t` of
    an accumulator A. `end_epoch()` (or every `update_every` training batches) sums A across processes,
    normalises its rows into the new S and zeroes A. S starts uniform, so the first period is label smoothing.

    Args:
        num_classes: Number of classes K.
        alpha: Weight of the hard term (paper's α, default 0.5).
        update_every: Swap every N training batches instead of at `end_epoch()` (paper Fig. 5b).
        empty_row: Row of a class with no correct sample in the period: ``"uniform"`` (authors' code,
            SPEC.md) or ``"keep"`` (the previous row).
        freeze_threshold: Freeze a row once its maximum reaches this value (authors' fine-grained code: 0.88).
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    default_alpha = 0.5

    def __init__(self, num_classes: int, alpha: float | None = None, update_every: int | None = None,
                 empty_row: str = "uniform", freeze_threshold: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        if update_every is not None and (not isinstance(update_every, int) or update_every < 1):
            raise ValueError(f"Expected `update_every` to be a positive integer or None but got {update_every!r}.")
        if empty_row not in EMPTY_ROW_POLICIES:
            raise ValueError(f"Expected `empty_row` in {EMPTY_ROW_POLICIES} but got {empty_row!r}.")
        self.update_every, self.empty_row, self.freeze_threshold = update_every, empty_row, freeze_threshold
        k = num_classes
        self.register_buffer("matrix", torch.full((k, k), 1.0 / k))
        self.register_buffer("frozen", torch.zeros(k, dtype=torch.bool))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.add_state("accumulator", torch.zeros(k, k))
        self.add_state("counts", torch.zeros(k))

    def relation_rows(self, classes: Tensor) -> Tensor:
        return self.matrix[classes]

    def compute(self, logits: Tensor, target: Tensor, labels: Tensor | None) -> Tensor:
        log_p = logits.log_softmax(dim=-1)
        hard = cross_entropy(target, log_p)
        soft = cross_entropy(relation_targets(target, labels, self.relation_rows), log_p)
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def update(self, logits: Tensor, target: Tensor, labels: Tensor | None) -> None:
        probs = logits.softmax(dim=-1)
        classes = labels if labels is not None else target.argmax(dim=-1)
        correct = probs.argmax(dim=-1) == classes
        self.accumulator.index_add_(0, classes[correct], probs[correct])
        self.counts.index_add_(0, classes[correct], torch.ones_like(classes[correct], dtype=torch.float32))
        self.steps += 1
        if self.update_every is not None and int(self.steps) % self.update_every == 0:
            self.swap()

    def end_epoch(self) -> None:
        """Swap at the epoch end, unless the period is `update_every` batches."""
        if self.update_every is None:
            self.swap()

    @torch.no_grad()
    def swap(self) -> None:
        """Sum A across processes, normalise its rows into S (empty rows per `empty_row`), zero A."""
        self.sync_states()
        seen = self.counts > 0
        rows = self.accumulator / self.accumulator.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        fallback = torch.full_like(rows, 1.0 / self.num_classes) if self.empty_row == "uniform" else self.matrix
        new = torch.where(seen[:, None], rows, fallback)
        new = torch.where(self.frozen[:, None], self.matrix, new)
        if self.freeze_threshold is not None:
            self.frozen |= new.max(dim=-1).values >= self.freeze_threshold
        self.matrix.copy_(new)
        self.accumulator.zero_()
        self.counts.zero_()

    def relation_matrix(self) -> Tensor:
        return self.matrix.detach().float().clone()
