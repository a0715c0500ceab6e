"""Token-level inputs and ignored labels, in one place: [B, T, K] logits are flattened to [B·T, K] rows, labels equal
to the ignore index are masked (a mask and `torch.where`, never boolean indexing: no host sync, one compiled graph),
and the mean is taken over the labels that count.

Which label is ignored (`resolve_ignore_index`): the loss's `ignore_index` when the user chose one; else -100 for
token logits [B, T, K] (the label transformers' token-classification collators give padding and continuation
sub-tokens, as `F.cross_entropy` and transformers' `LabelSmoother` ignore it) and none for sequence logits [B, K],
where -100 stays an error (a sequence has no padding label: a -100 there is a labelling bug).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .validation import IGNORE_INDEX


class Rows(NamedTuple):
    """Inputs as rows: `logits` [N, K]; `target` class ids [N] (ignored ones replaced by class 0) or soft [N, K];
    `valid` [N] bool (False where the label is ignored), None when no label can be ignored; `shape` the leading
    shape of per-sample values ([B] or [B, T])."""

    logits: Tensor
    target: Tensor
    valid: Tensor | None
    shape: torch.Size


def resolve_ignore_index(ignore_index: int | None, logits: Tensor) -> int | None:
    """The label value ignored for these logits: `ignore_index` when set; else -100 for token logits [B, T, K] and
    None (nothing ignored) for [B, K]."""
    if ignore_index is not None:
        return ignore_index
    return IGNORE_INDEX if logits.ndim == 3 else None


def as_rows(logits: Tensor, target: Tensor, ignore_index: int | None) -> Rows:
    """Flatten token logits [B, T, K] (and labels [B, T] or soft targets [B, T, K]) into rows; mask ignored labels.

    Args:
        logits: [B, K] or [B, T, K].
        target: Class ids of the logits' leading shape, or soft targets of the logits' shape (never ignored).
        ignore_index: The label to ignore (`resolve_ignore_index`), or None.
    """
    shape = logits.shape[:-1]
    if logits.ndim == 3:
        logits = logits.reshape(-1, logits.shape[-1])
        target = target.reshape(-1, target.shape[-1]) if torch.is_floating_point(target) else target.reshape(-1)
    if ignore_index is None or torch.is_floating_point(target):
        return Rows(logits, target, None, shape)
    valid = target != ignore_index
    return Rows(logits, target.masked_fill(~valid, 0), valid, shape)  # class 0 stands in; its loss is masked out


def reduce_rows(per_row: Tensor, valid: Tensor | None, reduction: str, shape: torch.Size) -> Tensor:
    """Reduce per-row losses: ignored rows count 0 (``"none"``: 0 at their place, as `F.cross_entropy`); the mean
    is over the rows that count (0 when none does, or the batch is empty: not NaN)."""
    if valid is not None:
        per_row = torch.where(valid, per_row, 0.0)
    if reduction == "none":
        return per_row.reshape(shape)
    if reduction == "sum" or not per_row.numel():
        return per_row.sum()
    return per_row.mean() if valid is None else per_row.sum() / valid.sum().clamp_min(1)


def count_targets(labels: Tensor, ignore_index: int | None = None) -> Tensor:
    """How many targets of a batch count in the mean (as a tensor: counting does not sync): the class ids
    (token labels [B, T] or sequence labels [B]) other than the ignore index (`resolve_ignore_index`: -100 for
    token labels unless set), or the rows of soft targets ([B, K] or [B, T, K]). The Trainer's `num_items_in_batch`.
    """
    if torch.is_floating_point(labels):
        return torch.tensor(labels.shape[:-1].numel(), device=labels.device)
    ignored = ignore_index if ignore_index is not None else (IGNORE_INDEX if labels.ndim == 2 else None)
    return torch.tensor(labels.numel(), device=labels.device) if ignored is None else labels.ne(ignored).sum()
