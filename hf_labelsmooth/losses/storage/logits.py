"""Learnable relation logits (LS++, LLS): `DenseLogits` here (a K×K parameter), `TopNLogits` in `top_logits`.

R[y] is a softmax of row y of the logits; with ``include_self=False`` (LS++) over the classes other than y. A
method's fused class-id kernels come as a `kernels/` module with one function per storage (`HardLabelKernels`),
and each storage calls the one it fits.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from ..base import RelationLoss
from ..functional import masked_row_softmax
from ..memory import check_dense_fits
from .tensors import OnLoss


class HardLabelKernels(Protocol):
    """A method's fused class-id losses (e.g. the module `kernels.fused_lls`): per-sample values [B]."""

    def dense_loss(self, logits: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float) -> Tensor:
        """From the K×K relation logits."""

    def top_n_loss(self, logits: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor,
                   n_tail: int, alpha: float, observe: bool) -> tuple[Tensor, Tensor, Tensor]:
        """From top-N rows: (loss, most probable wrong class, its probability; empty unless `observe`)."""


class LogitRows(Protocol):
    """What `LearnableRelationLoss` asks of its storage (`DenseLogits` or `TopNLogits`)."""

    @property
    def top_n(self) -> int | None:
        """N of the top-N rows; None: dense."""

    def relation_rows(self, classes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """R[classes], [n, K] in `dtype` (differentiable)."""

    def hard_loss(self, kernels: HardLabelKernels, logits: Tensor, labels: Tensor, alpha: float) -> Tensor:
        """The method's fused class-id loss for this storage."""

    def observe(self, logits: Tensor, target: Tensor | None, labels: Tensor | None,
                valid: Tensor | None = None) -> None:
        """Training-time statistics of a batch (top-N: the confused classes of each row); rows with `valid` False
        carry an ignored label and record nothing."""

    def end_epoch(self) -> None:
        """Epoch end (top-N: refresh the slots unless a period is set)."""

    def relation_matrix(self) -> Tensor:
        """R as a K×K float32 tensor (detached)."""

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        """(class ids [K, n], probabilities [K, n]) of R's largest entries per row."""

    def parameter_names(self) -> set[str]:
        """Names of the loss's parameters this storage holds."""


class DenseLogits:
    """A K×K parameter ``logits`` (zeros: uniform rows at the start), learned by gradient alone."""

    top_n = None
    logits = OnLoss()

    def __init__(self, loss: RelationLoss, include_self: bool) -> None:
        self.loss, self.include_self = loss, include_self
        check_dense_fits(loss.num_classes, 1, f"{loss.spec.name} relation logits")
        loss.register_parameter("logits", nn.Parameter(torch.zeros(loss.num_classes, loss.num_classes)))

    def relation_rows(self, classes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        if self.include_self:
            return self.logits.index_select(0, classes).to(dtype).softmax(dim=-1)
        return masked_row_softmax(self.logits.to(dtype), classes)

    def hard_loss(self, kernels: HardLabelKernels, logits: Tensor, labels: Tensor, alpha: float) -> Tensor:
        return kernels.dense_loss(logits, labels, self.logits, alpha)

    def observe(self, logits: Tensor, target: Tensor | None, labels: Tensor | None,
                valid: Tensor | None = None) -> None:
        """Nothing to record: dense logits learn by gradient alone."""

    def end_epoch(self) -> None:
        """Nothing to refresh."""

    def relation_matrix(self) -> Tensor:
        if self.include_self:
            return self.logits.detach().float().softmax(dim=-1)
        classes = torch.arange(self.loss.num_classes, device=self.logits.device)
        return masked_row_softmax(self.logits.detach().float(), classes)

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        k = self.loss.num_classes
        values, indices = self.relation_matrix().topk(min(n or k - (0 if self.include_self else 1), k), dim=-1)
        return indices, values

    def parameter_names(self) -> set[str]:
        return {"logits"}
