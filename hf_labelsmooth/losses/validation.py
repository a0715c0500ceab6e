"""Input checks shared by every loss. Each error says what was expected, what was got, and how to fix it."""
from __future__ import annotations

import math

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_num_classes(num_classes: int) -> int:
    """Validate K: an integer of at least 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"Expected `num_classes` to be an integer >= 2 but got {num_classes!r}.")
    return num_classes


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Validate a weight in [0, 1]."""
    if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"Expected `{name}` in [0, 1] but got {alpha!r}.")
    return float(alpha)


def check_reduction(reduction: str) -> str:
    """Validate a reduction name."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Expected `reduction` in {REDUCTIONS} but got {reduction!r}.")
    return reduction


def check_logits_shape(logits: Tensor, num_classes: int, batch: int) -> None:
    """Check logits of shape [B, K]; `batch` is the loss's call counter, quoted in errors."""
    if logits.ndim != 2 or logits.shape[-1] != num_classes:
        raise ValueError(
            f"Expected logits of shape [batch, num_classes={num_classes}] but got {tuple(logits.shape)} "
            f"(batch {batch}). Build the loss with num_classes={logits.shape[-1] if logits.ndim else '?'} "
            "or fix the model's classifier head (config.num_labels)."
        )


def check_finite_loss(loss: Tensor, per_sample: Tensor, logits: Tensor, batch: int) -> None:
    """Raise when the (reduced) loss is not finite, naming the NaN/inf logit rows.

    The loss is checked, not the [B, K] logits, so a finite batch costs one host sync on a scalar; -inf logits
    that leave the loss finite (masked classes) pass.
    """
    if math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss.detach()).all()):
        return
    finite = torch.isfinite(logits.detach()).all(dim=-1)
    rows = (~finite).nonzero().flatten()[:8].tolist()
    if rows:
        kind = "NaN" if bool(torch.isnan(logits).any()) else "inf"
        raise ValueError(
            f"Expected finite logits but got {kind} in batch {batch} (rows {rows}). Lower the learning rate, "
            "clip gradients, or train in bf16/fp32 instead of fp16."
        )
    rows = (~torch.isfinite(per_sample.detach())).nonzero().flatten()[:8].tolist()
    raise ValueError(f"Expected a finite loss but got a non-finite value in batch {batch} (rows {rows}) from finite "
                     "logits; check the relation matrix (load it with its validation) and the learning rate.")


def check_target(target: Tensor, batch_size: int, num_classes: int, batch: int) -> None:
    """Check class ids in [0, K) or soft targets [B, K] whose rows are distributions."""
    if not torch.is_floating_point(target):
        _check_class_ids(target, batch_size, num_classes, batch)
        return
    if target.shape != (batch_size, num_classes):
        raise ValueError(
            f"Expected soft targets of shape ({batch_size}, {num_classes}) but got {tuple(target.shape)} "
            f"(batch {batch}). Pass class ids as a LongTensor [B] or probabilities as a FloatTensor [B, K]."
        )
    t = target.detach().float()
    atol = 1e-4 if target.dtype in (torch.float32, torch.float64) else 1e-2
    sums = t.sum(-1)
    if not bool((t.amin(dim=-1) >= 0).all() & torch.isfinite(sums).all() & ((sums - 1).abs() <= atol).all()):  # 1 sync
        bad = ((sums - 1).abs() > atol).nonzero().flatten()[:8].tolist()
        raise ValueError(
            f"Expected soft targets with non-negative rows summing to 1 but got row sums "
            f"{sums[bad].tolist() if bad else sums[:4].tolist()} in rows {bad} (batch {batch}). "
            "Normalise the targets (e.g. timm Mixup output) or pass class ids."
        )


def _check_class_ids(target: Tensor, batch_size: int, num_classes: int, batch: int) -> None:
    if target.ndim != 1 or target.shape[0] != batch_size:
        raise ValueError(
            f"Expected class ids of shape ({batch_size},) but got {tuple(target.shape)} (batch {batch})."
        )
    if not target.numel():
        return
    lo, hi = torch.stack(torch.aminmax(target)).tolist()  # one host sync for both bounds
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"Expected labels in [0, {num_classes}) but got values in [{lo}, {hi}] (batch {batch}). "
            f"Set num_classes to the dataset's number of classes, or map 1-based labels to 0-based."
        )
