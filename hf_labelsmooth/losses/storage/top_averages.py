"""Top-N OLS storage (``OnlineLabelSmoothing(top_n=N)``): S and the accumulator A kept as per-row top-N tables.

S is stored as ``matrix_index`` / ``matrix_values`` (K×N, index -1 = empty slot) plus ``matrix_tail`` (K): the
mass that row y spreads uniformly over the classes not in its slots. A fresh loss has no slots and tail 1, i.e. the
uniform S⁰ of docs/methods.md. The accumulator is a K×M table (``acc_index`` / ``acc_values``, M = min(K,
``buffer_factor``·N)) plus ``acc_dropped`` (K): each correct sample adds its M largest probabilities to its
class's table (summed per class, the M largest kept: a heavy-hitters sketch) and the mass it could not keep to
``acc_dropped``. At a swap, each row's top N accumulated entries divided by the row's total mass become S, and
everything else (the remaining M-N entries and the dropped mass) becomes the row's tail. With N = K nothing is
dropped and S equals the dense OLS matrix. The tables are declared states (`add_state`): at each swap the tables of
all processes are merged in one pass (`merge_top_tables`: the same result on every process, whatever its rank).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..base import RelationLoss
from ..sparse.grouped_merge import merge_groups
from ..sparse.slots import DENSE_MATRIX_LIMIT
from ..sparse.tables import merge_top_tables
from .tensors import OnLoss


class TopNAverages:
    """S and A of `OnlineLabelSmoothing` as per-row top-N tables (see the module docstring); an `AveragedRows`."""

    matrix_index = OnLoss()  # buffers
    matrix_values = OnLoss()
    matrix_tail = OnLoss()
    acc_index = OnLoss()  # states (`add_state`)
    acc_values = OnLoss()
    acc_dropped = OnLoss()

    def __init__(self, loss: RelationLoss, top_n: int, buffer_factor: int) -> None:
        self.loss, k = loss, loss.num_classes
        if not isinstance(buffer_factor, int) or buffer_factor < 1:
            raise ValueError(f"Expected `buffer_factor` to be a positive integer but got {buffer_factor!r}.")
        self.top_n, width = top_n, min(k, buffer_factor * top_n)
        loss.register_buffer("matrix_index", torch.full((k, top_n), -1, dtype=torch.long))
        loss.register_buffer("matrix_values", torch.zeros(k, top_n))
        loss.register_buffer("matrix_tail", torch.ones(k))
        loss.add_state(("acc_index", "acc_values", "acc_dropped"),  # per process: merged at each swap
                       (torch.full((k, width), -1, dtype=torch.long), torch.zeros(k, width), torch.zeros(k)),
                       dist_reduce_fx=merge_top_tables)

    def relation_rows(self, classes: Tensor) -> Tensor:
        """Dense rows S[classes], [n, K]: slot values at their classes, the tail spread over the other classes."""
        k = self.loss.num_classes
        index, values = self.matrix_index[classes], self.matrix_values[classes]
        valid = index >= 0
        fill = self.matrix_tail[classes] / (k - valid.sum(dim=-1)).clamp_min(1)
        delta = torch.where(valid, values - fill[:, None], 0.0)  # empty slots add 0 (duplicates are harmless)
        return fill[:, None].expand(len(classes), k).scatter_add(1, index.clamp_min(0), delta)

    def accumulate(self, probs: Tensor, classes: Tensor, correct: Tensor) -> None:
        """Add the probabilities [B, K] of the `correct` samples [B] to the accumulator table of their classes [B].

        Eagerly only the correct rows enter (`topk` over K is the cost); compiled, every row does, the wrong ones
        masked (shapes must not depend on the data). Both give the same tables.
        """
        if not torch.compiler.is_compiling():
            picked = correct.nonzero().squeeze(1)
            probs, classes, correct = probs[picked], classes[picked], correct[picked]
        top, cols = probs.topk(self.acc_index.shape[1], dim=-1)
        self.acc_dropped.add_(merge_groups(self.acc_index, self.acc_values, classes, cols, top, correct))
        rest = (probs.sum(dim=-1) - top.sum(dim=-1)).clamp_min(0)
        self.acc_dropped.index_add_(0, classes, torch.where(correct, rest, 0.0))

    @torch.no_grad()
    def swap(self, seen: Tensor, empty_row: str, frozen: Tensor, freeze_threshold: float | None) -> None:
        """New S from the accumulator (empty rows per `empty_row`, frozen rows kept); clears the accumulator."""
        valid = self.acc_index >= 0
        total = (self.acc_values * valid).sum(dim=-1) + self.acc_dropped
        top, order = self.acc_values.masked_fill(~valid, -1.0).topk(self.top_n, dim=-1)
        index = self.acc_index.gather(1, order).masked_fill(top < 0, -1)
        values = (top.clamp_min(0) / total.clamp_min(1e-12)[:, None]).masked_fill(index < 0, 0.0)
        tail = (1.0 - values.sum(dim=-1)).clamp_min(0)
        if empty_row == "uniform":  # an empty row is reset before the freeze test (authors' code)
            keep = frozen & seen
            index, values = index.masked_fill(~seen[:, None], -1), values.masked_fill(~seen[:, None], 0.0)
            tail = torch.where(seen, tail, torch.ones_like(tail))
        else:
            keep = frozen | ~seen
        index = torch.where(keep[:, None], self.matrix_index, index)
        values = torch.where(keep[:, None], self.matrix_values, values)
        tail = torch.where(keep, self.matrix_tail, tail)
        if freeze_threshold is not None:
            frozen.copy_(values.max(dim=-1).values >= freeze_threshold)
        self.matrix_index.copy_(index)
        self.matrix_values.copy_(values)
        self.matrix_tail.copy_(tail)
        self.acc_index.fill_(-1)
        self.acc_values.zero_()
        self.acc_dropped.zero_()

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        """(class indices [K, n], probabilities [K, n]) of R's largest entries, n <= top_n.

        Empty slots show tail classes (the lowest class ids outside the slots) with their share of the tail.
        """
        k = self.loss.num_classes
        values, order = self.matrix_values.topk(min(n or self.top_n, self.top_n), dim=-1)
        index = self.matrix_index.gather(1, order)
        empty = index < 0
        fill = self.matrix_tail / (k - (self.matrix_index >= 0).sum(dim=-1)).clamp_min(1)
        spare = torch.arange(min(k, 2 * self.top_n), device=index.device).expand(len(index), -1)
        taken = (spare[:, :, None] == self.matrix_index[:, None, :]).any(dim=-1)
        spare = spare.gather(1, taken.long().argsort(dim=-1, stable=True))  # free class ids first
        rank = empty.long().cumsum(dim=-1) - 1
        index = torch.where(empty, spare.gather(1, rank.clamp_min(0)), index)
        return index, torch.where(empty, fill[:, None].expand_as(values), values)

    def relation_matrix(self) -> Tensor:
        k = self.loss.num_classes
        if k > DENSE_MATRIX_LIMIT:
            raise ValueError(f"Expected num_classes <= {DENSE_MATRIX_LIMIT} for a dense relation_matrix() of a sparse "
                             f"loss but got {k}; use relation_topk() instead.")
        return self.relation_rows(torch.arange(k, device=self.matrix_tail.device))
