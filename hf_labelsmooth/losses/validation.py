"""Input checks shared by every loss. Each error says what was expected, what was got, and how to fix it."""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")
IGNORE_INDEX = -100  # transformers' label of positions without a target: ignored for token logits (`tokens`)
NO_IGNORE_INDEX = torch.iinfo(torch.int64).min  # for F.cross_entropy: -100 is an invalid label, never a zero loss


def _is_bool(value: Any) -> bool:
    """Python, NumPy or torch booleans (which Python would otherwise take as 0 / 1)."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    return isinstance(value, bool) or numpy_bool or (isinstance(value, Tensor) and value.dtype == torch.bool)


def _real(value: Any) -> float | None:
    """`value` as a float when it is a real number of any numeric type (int, float, NumPy, 0-d tensor), else None."""
    if _is_bool(value):
        return None
    if isinstance(value, Tensor):
        ok = value.numel() == 1 and not value.is_complex()
        return float(value.detach().reshape(())) if ok else None
    return float(value) if isinstance(value, numbers.Real) else None


def check_num_classes(num_classes: Any) -> int:
    """Validate K: an integer (of any integer type: int, NumPy, 0-d tensor; not a bool) of at least 2."""
    try:
        k = None if _is_bool(num_classes) else operator.index(num_classes)
    except TypeError:
        k = None
    if k is None or k < 2:
        raise ValueError(f"Expected `num_classes` to be an integer >= 2 but got {num_classes!r}.")
    return k


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """Validate a weight in [0, 1]: a real number of any numeric type (int, float, NumPy, 0-d tensor), not a bool."""
    value = _real(alpha)
    if value is None or not 0.0 <= value <= 1.0:
        kind = f" ({type(alpha).__name__}: pass a real number)" if value is None else ""
        raise ValueError(f"Expected `{name}` in [0, 1] but got {alpha!r}{kind}.")
    return value


def check_reduction(reduction: str) -> str:
    """Validate a reduction name."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Expected `reduction` in {REDUCTIONS} but got {reduction!r}.")
    return reduction


def as_class_ids(target: Tensor) -> Tensor:
    """The one label dtype rule of every loss: float targets are soft; integer class ids of any integer dtype are
    taken as int64; bool and complex labels are refused (no host sync: the check is on the dtype)."""
    if torch.is_floating_point(target) or target.dtype == torch.int64:
        return target
    if target.dtype == torch.bool or target.is_complex():
        raise ValueError(f"Expected class ids of an integer dtype (or float soft targets [B, K]) but got "
                         f"{target.dtype} labels. Convert them with labels.long().")
    return target.long()


def check_logits_shape(logits: Tensor, num_classes: int, batch: int) -> None:
    """Check logits of shape [B, K] (sequences) or [B, T, K] (tokens); `batch` is the loss's call counter."""
    if logits.ndim not in (2, 3) or logits.shape[-1] != num_classes:
        raise ValueError(
            f"Expected logits of shape [batch, num_classes={num_classes}] or [batch, tokens, num_classes="
            f"{num_classes}] but got {tuple(logits.shape)} (batch {batch}). Build the loss with "
            f"num_classes={logits.shape[-1] if logits.ndim else '?'} or fix the model's classifier head "
            "(config.num_labels)."
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


def target_ok(target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """0-d bool, device-side (no sync): class ids in [0, K) (or equal to `ignore_index`), or soft targets whose rows
    are distributions.

    The one label-range rule: the eager check (`check_target`) reads it on the host, the deferred one records it.
    Shapes are checked first (`check_target_shape`).
    """
    if not torch.is_floating_point(target):
        if not target.numel():
            return torch.ones((), dtype=torch.bool, device=target.device)
        lo, hi = torch.aminmax(_counted(target, ignore_index))
        return (lo >= 0) & (hi < num_classes)
    t = target.detach().float().reshape(-1, num_classes)
    sums = t.sum(-1)
    return (t.amin(dim=-1) >= 0).all() & ((sums - 1).abs() <= _atol(target)).all()  # NaN/inf fail the comparison


def _counted(target: Tensor, ignore_index: int | None) -> Tensor:
    """Class ids with the ignored ones replaced by class 0 (in range), so that range checks see only counted ids."""
    return target if ignore_index is None else target.masked_fill(target == ignore_index, 0)


def _atol(target: Tensor) -> float:
    return 1e-4 if target.dtype in (torch.float32, torch.float64) else 1e-2


def check_target_shape(target: Tensor, logits_shape: torch.Size, num_classes: int, batch: int) -> None:
    """Class ids of the logits' leading shape ([B] or [B, T]), or soft targets of the logits' shape (no sync)."""
    if not torch.is_floating_point(target):
        shape = logits_shape[:-1]
        if target.shape != shape:
            kind = "token " if len(shape) == 2 else ""
            raise ValueError(f"Expected {kind}class ids of shape {tuple(shape)} (the logits' without the class "
                             f"dimension) but got {tuple(target.shape)} (batch {batch}).")
    elif target.shape != logits_shape:
        raise ValueError(
            f"Expected soft targets of shape {tuple(logits_shape)} (the logits') but got {tuple(target.shape)} "
            f"(batch {batch}). Pass class ids as a LongTensor [B] ([B, T] for tokens) or probabilities [B, K]."
        )


def check_target(target: Tensor, logits_shape: torch.Size, num_classes: int, batch: int,
                 ignore_index: int | None = None) -> None:
    """Check class ids in [0, K) (or equal to `ignore_index`) of the logits' leading shape ([B] or [B, T]), or soft
    targets of the logits' shape whose rows are distributions (one host sync)."""
    check_target_shape(target, logits_shape, num_classes, batch)
    if bool(target_ok(target, num_classes, ignore_index)):
        return
    if not torch.is_floating_point(target):
        _raise_class_ids(target, num_classes, batch, ignore_index)
    t = target.detach().float().reshape(-1, num_classes)
    sums = t.sum(-1)
    bad_rows = (t < 0).any(-1) | ~torch.isfinite(t).all(-1) | ~((sums - 1).abs() <= _atol(target))
    bad = bad_rows.nonzero().flatten()[:8].tolist()
    raise ValueError(
        f"Expected soft targets with non-negative rows summing to 1 but got rows {bad} (batch {batch}) "
        f"with minima {t[bad].amin(-1).tolist()} and sums {sums[bad].tolist()}. Normalise the targets (e.g. timm "
        "Mixup output) or pass class ids."
    )


def _raise_class_ids(target: Tensor, num_classes: int, batch: int, ignore_index: int | None) -> None:
    lo, hi = torch.stack(torch.aminmax(_counted(target, ignore_index))).tolist()
    if lo < 0 and ignore_index is None and bool((target == IGNORE_INDEX).any()):
        rows = (target == IGNORE_INDEX).nonzero().flatten()[:8].tolist()
        raise ValueError(
            f"Expected labels in [0, {num_classes}) but got {IGNORE_INDEX} (Hugging Face's ignore index) in rows "
            f"{rows} (batch {batch}). Sequence labels are not ignored by default: drop the unlabelled rows from the "
            f"dataset, or build the loss with ignore_index={IGNORE_INDEX} to skip them (token logits [B, T, K] "
            f"ignore {IGNORE_INDEX} by default)."
        )
    skip = "" if ignore_index is None else f" (other than the ignore index {ignore_index})"
    raise ValueError(
        f"Expected labels in [0, {num_classes}){skip} but got values in [{lo}, {hi}] (batch {batch}). "
        f"Set num_classes to the dataset's number of classes, or map 1-based labels to 0-based."
    )


def check_ignore_index(ignore_index: Any) -> int | None:
    """Validate `ignore_index`: None (the default: -100 for token logits only) or an integer (not a bool)."""
    if ignore_index is None:
        return None
    if not _is_bool(ignore_index):
        try:
            return operator.index(ignore_index)
        except TypeError:
            pass
    raise ValueError(f"Expected `ignore_index` to be an integer (e.g. {IGNORE_INDEX}) or None but got "
                     f"{ignore_index!r}.")
