"""Fused cross-entropy against smoothed hard targets t = (1-a)·e_y + a·rows (LS, OLS): one softmax, one backward op.

For t summing to 1, -Σ_k t_k log p_k = lse(z) - t·z, so the forward pass needs the softmax p (kept for the
backward pass and for OLS's statistics), the row maximum (lse = max - log p_argmax never underflows) and one row
dot product; the gradient is (p - t)·g with t never built as a [B, K] tensor for uniform rows. Maths in float32
whatever the dtype of the logits; the gradient comes back in that dtype.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional import propagate_nan


def _as_float(z: Tensor) -> Tensor:
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def _smooth_dot(z: Tensor, rows: Tensor | None, a: float) -> Tensor:
    """rows·z (Σ z for uniform rows), with no term where the target has no mass: a = 0, or rows_k = 0 (masked
    classes with -inf logits give 0, not NaN). A non-finite entry of `rows` is a defect and makes the row NaN
    (`propagate_nan`); NaN logits give a NaN loss through the row maximum. On the CPU the product + nansum is no
    slower than vecdot (a `torch.where` mask before vecdot doubled the kernel's time).
    """
    if a == 0:
        return z.new_zeros(z.shape[:1])
    if rows is None:
        return z.sum(dim=-1)
    rows = rows.to(z.dtype)
    return propagate_nan(torch.nansum(rows * z, dim=-1), rows.sum(dim=-1))  # nansum drops 0·(-inf) terms only


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Few, large ops: at small K each op's fixed cost dominates (Python scalars would add tensor wrappers)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, rows: Tensor | None, a: float) -> tuple[Tensor, ...]:
        z = _as_float(logits)
        k, col = z.shape[-1], labels[:, None]
        top = z.amax(dim=-1)  # amax + amax(p) is several times faster than max() with indices on CPU
        p = torch.softmax(z, dim=-1)
        z_y = z.gather(1, col).squeeze(1)
        smooth = _smooth_dot(z, rows, a)
        # lse = top - log p_max (p at the arg-max is >= 1/K: never underflows); loss = lse - (1-a)·z_y - a·smooth
        loss = torch.sub(top, p.amax(dim=-1).log_()).sub_(z_y, alpha=1.0 - a).sub_(smooth, alpha=a / k if rows
                                                                                      is None else a)
        correct = z_y >= top
        ctx.save_for_backward(p, col, rows)
        ctx.a, ctx.dtype = a, logits.dtype
        ctx.mark_non_differentiable(p, correct)
        ctx.set_materialize_grads(False)  # else autograd fills a [B, K] zero gradient for `p` on every backward
        return loss, p, correct

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        p, col, rows = ctx.saved_tensors
        a, g = ctx.a, grad_loss[:, None]
        if rows is None:  # (p - a/K)·g in one pass
            grad = torch.addcmul(g.mul(-a / p.shape[-1]), p, g)
        else:
            grad = torch.sub(p, rows, alpha=a).mul_(g)
        grad.scatter_add_(1, col, g.mul(a - 1.0))  # float32 here: scatter_add_ on bf16 is slow on CPU
        return grad.to(ctx.dtype), None, None, None


def smoothed_cross_entropy(logits: Tensor, labels: Tensor, a: float,
                           rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample H(t, softmax(z)) for t = (1-a)·e_y + a·rows, with `rows` [B, K] (rows summing to 1, no
    gradient) or None for the uniform row 1/K.

    Args:
        logits: [B, K] logits of any float dtype (the maths runs in float32; the gradient keeps the dtype).
        labels: [B] class ids.
        a: Weight of `rows` in the target.
        rows: The smoothing rows (e.g. OLS's S[y]); None = uniform (label smoothing).

    Returns:
        (loss [B] float32, detached probabilities [B, K] float32, detached bool [B]: the label's logit is the
        row's maximum, i.e. the prediction is correct, ties counting as correct).
    """
    return _SmoothedCrossEntropy.apply(logits, labels, rows, a)
