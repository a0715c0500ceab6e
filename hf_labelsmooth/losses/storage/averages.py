"""OLS storage: S, the average of last period's correct predictions, and its accumulator A; `DenseAverages` here,
`TopNAverages` (per-row top-N tables) in `top_averages`."""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..base import RelationLoss
from ..functional import may_sync
from ..memory import check_dense_fits
from .tensors import OnLoss


class AveragedRows(Protocol):
    """What `OnlineLabelSmoothing` asks of its storage (`DenseAverages` or `TopNAverages`)."""

    @property
    def top_n(self) -> int | None:
        """N of the top-N rows; None: dense."""

    def relation_rows(self, classes: Tensor) -> Tensor:
        """Dense rows S[classes], [n, K] float32."""

    def accumulate(self, probs: Tensor, classes: Tensor, correct: Tensor) -> None:
        """Add the probabilities [B, K] of the `correct` samples [B] to A's rows `classes` [B]."""

    def swap(self, seen: Tensor, empty_row: str, frozen: Tensor, freeze_threshold: float | None) -> None:
        """New S from A's rows (rows not `seen` per `empty_row`, `frozen` rows kept, then refrozen); zero A."""

    def relation_matrix(self) -> Tensor:
        """S as a K×K float32 tensor (a copy)."""

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        """(class ids [K, n], probabilities [K, n]) of S's largest entries per row."""


class DenseAverages:
    """S as the buffer ``matrix`` (K×K, uniform at the start: the first period is label smoothing) and A as the
    state ``accumulator`` (K×K, summed across processes)."""

    top_n = None
    matrix = OnLoss()
    accumulator = OnLoss()

    def __init__(self, loss: RelationLoss) -> None:
        self.loss, k = loss, loss.num_classes
        check_dense_fits(k, 2, f"{loss.spec.name} matrix and its accumulator")
        loss.register_buffer("matrix", torch.full((k, k), 1.0 / k))
        loss.expect("matrix", "stochastic")
        loss.add_state("accumulator", torch.zeros(k, k))

    def relation_rows(self, classes: Tensor) -> Tensor:
        return self.matrix.index_select(0, classes)

    def accumulate(self, probs: Tensor, classes: Tensor, correct: Tensor) -> None:
        if not may_sync(probs):  # every sample, the wrong ones with weight 0: no data-dependent shape, no host sync
            self.accumulator.index_add_(0, classes, torch.where(correct[:, None], probs, 0.0))  # NaN·0 is NaN
        else:  # on the CPU, the correct rows only (the same sums: the other path adds exact zeros)
            picked = correct.nonzero().squeeze(1)
            self.accumulator.index_add_(0, classes.index_select(0, picked), probs.index_select(0, picked))

    def swap(self, seen: Tensor, empty_row: str, frozen: Tensor, freeze_threshold: float | None) -> None:
        rows = self.accumulator / self.accumulator.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        seen = seen & torch.isfinite(rows).all(dim=-1)  # a non-finite row is never installed (`swap_defects`)
        fallback = torch.full_like(rows, 1.0 / self.loss.num_classes) if empty_row == "uniform" else self.matrix
        new = torch.where(seen[:, None], rows, fallback)  # an empty row is reset before the freeze test
        new = torch.where((frozen & seen)[:, None], self.matrix, new)
        if freeze_threshold is not None:
            frozen.copy_(new.max(dim=-1).values >= freeze_threshold)
        self.matrix.copy_(new)
        self.accumulator.zero_()

    def relation_matrix(self) -> Tensor:
        return self.matrix.detach().float().clone()

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        k = self.loss.num_classes
        values, indices = self.matrix.topk(min(n or k, k), dim=-1)
        return indices, values.clone()
