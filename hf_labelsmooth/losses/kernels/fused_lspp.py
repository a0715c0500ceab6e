"""LS++ for class ids with hand-written backward: one softmax pass over the logits, no log-probability tensor.

Both functions return the per-sample loss (H(sg(t), p) + H(sg(p), t)) / 2 in float32 (docs/methods.md "lspp") and give
the logits only the network term's gradient (p - t) / 2, in their own dtype, and the relation logits only the
matrix term's. The maths is float32 whatever the logits' dtype. Identities used (Σ_k t_k = 1, log p = z - lse):
H(t, p) = lse - t·z, with lse = z_y - log p_y or max z - log max p (no second exp pass); and
log r_k = C_k - lse_C off the target, so H(p, t) needs p·C, not a [B, K] log r. log t is clamped at log(tiny)
(finite for α ∈ {0, 1}); a clamped entry passes no gradient to C, as with autograd's clamp.

Backward reuses the saved probabilities in place (fewer [B, K] buffers): a second backward through the same
graph (``retain_graph=True``) raises autograd's "modified by an inplace operation" error instead of going wrong.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .wrong_class import most_probable_wrong
from ..functional import LOG_TINY, log_or_neg_inf, may_sync

NORMAL = 1e-30  # p_y above this has full float32 precision: lse = z_y - log p_y


def log_target_own(alpha: float) -> float:
    """Clamped log t_y = log(1-α)."""
    return max(LOG_TINY, math.log(1.0 - alpha)) if alpha < 1.0 else LOG_TINY


def softmax_lse(z: Tensor, x: Tensor, col: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(p = softmax(z) float32 [B, K], logsumexp [B], p_y, z_y) of logits z and their float32 copy x (may be z).

    lse = z_y - log p_y is exact while p_y is a normal float (no second pass); otherwise, and wherever checking would
    sync (`may_sync`: off the CPU, under torch.compile), lse = max z - log max p. Both are tested on the CPU.
    """
    p = torch.softmax(x, dim=-1)
    p_y, z_y = p.gather(1, col).squeeze(1), z.gather(1, col).squeeze(1).float()
    if may_sync(z) and bool((p_y >= NORMAL).all()):  # all(), not amin(): an empty batch passes
        return p, z_y - p_y.log(), p_y, z_y
    return p, z.amax(dim=-1).float() - p.amax(dim=-1).log(), p_y, z_y


def scale_rows_(x: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """x · scale ([B, 1]) in `dtype`, computed in place in float32 (then one cast for other dtypes)."""
    return x.mul_(scale).to(dtype)


class DenseLSPP(torch.autograd.Function):
    """Dense LS++ with hard labels: logits z [B, K], labels [B], relation logits C [K, K] (diagonal unused).

    Memory is what makes it fast on the CPU: a step holding many [B, K] buffers besides the K×K gradient makes
    the allocator give pages back and fault them in again on the next step. So p and R[y] (in place of C[y]) are
    the only [B, K] buffers kept; backward turns them into the gradients in place; the K×K gradient buffer is taken
    in forward (when it will be needed, `track`) and lends its memory to the row products until backward zeroes it.
    log t_k = log α + C_k - lse_C is clamped where C_k < cut = log(tiny) - log α + lse_C; the exact clamp runs only
    where it can bite (checked on the CPU; always where checking would sync, `may_sync`).
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float,
                track: bool) -> Tensor:
        col = labels[:, None]
        lend = track and ctx.needs_input_grad[2] and not torch.compiler.is_compiling()  # compiled: memory is planned
        grad_c = torch.empty(relation_logits.shape, device=z.device) if lend else None
        r, lse_c, lowest = _relation_rows(relation_logits, labels, alpha)
        x = z if z.dtype == torch.float32 else z.float()
        rz = _dot_(r, x, _scratch(grad_c, x))
        p, lse_z, p_y, z_y = softmax_lse(z, x, col)
        cut = _clamp_cut(lowest, lse_c, alpha)
        off, pc, own = _off_target(p, relation_logits, labels, lse_c, alpha, cut, _scratch(grad_c, x))
        twice = (lse_z - off).sub_(pc).add_(z_y, alpha=alpha - 1.0).add_(rz, alpha=-alpha)
        ctx.alpha, ctx.dtype, ctx.relation_dtype, ctx.grad_c = alpha, z.dtype, relation_logits.dtype, grad_c
        ctx.relation_shape = relation_logits.shape
        ctx.save_for_backward(p, r, labels, p_y, None if cut is None else own, cut)
        return twice.addcmul_(p_y, off - log_target_own(alpha)).mul_(0.5)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, Tensor | None, None, None]:
        p, r, labels, p_y, own, cut = ctx.saved_tensors
        col, alpha, half, grad_c, ctx.grad_c = labels[:, None], ctx.alpha, grad.mul(0.5)[:, None], ctx.grad_c, None
        kept = None if cut is None else torch.where(own >= cut[:, None], p, 0.0).scatter_(1, col, 0.0)
        diff = p.sub_(r, alpha=alpha).scatter_(1, col, (p_y - (1.0 - alpha))[:, None])  # p - t
        if ctx.needs_input_grad[2]:
            grad_c = torch.zeros(ctx.relation_shape, device=p.device) if grad_c is None else grad_c.zero_()
            if alpha > 0:
                grad_c.index_add_(0, labels, _relation_rows_grad(r, diff, kept, p_y, half, alpha, col))
            grad_c = grad_c.to(ctx.relation_dtype)
        grad_z = scale_rows_(diff, half, ctx.dtype) if ctx.needs_input_grad[0] else None
        return grad_z, None, grad_c, None, None


def _relation_rows(relation_logits: Tensor, labels: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor | None]:
    """(R[labels] = softmax over k ≠ y of C[y], new [B, K] float32; lse_C [B]; min_k C[y, k] [B] when α > 0)."""
    rows = _own_rows(relation_logits, labels)
    lowest = rows.amin(dim=-1) if alpha > 0 else None  # <= the off-target C[y] (the own class included)
    top = rows.scatter_(1, labels[:, None], float("-inf")).amax(dim=-1)
    r = torch.softmax(rows, dim=-1)
    return r, top - r.amax(dim=-1).log(), lowest


def _off_target(p: Tensor, relation_logits: Tensor, labels: Tensor, lse_c: Tensor, alpha: float, cut: Tensor | None,
                scratch: Tensor | None) -> tuple[Tensor, Tensor | float, Tensor | None]:
    """Σ_{k≠y} p_k log t_k = (1 - p_y)·off + pc: (off [B], pc [B], C[y] kept for the clamp mask or None).

    Without clamping off = log α - lse_C and pc = Σ_{k≠y} p_k C_k; clamped entries count cut instead of C_k. At
    α = 0 every log t_k is log(tiny): off = log(tiny), pc = 0.
    """
    if alpha == 0:
        return torch.full_like(lse_c, LOG_TINY), 0.0, None
    col = labels[:, None]
    if cut is None:
        own = _own_rows(relation_logits, labels, scratch).scatter_(1, col, 0.0)
        return log_or_neg_inf(alpha) - lse_c, torch.mul(own, p, out=own).sum(dim=-1), None
    own = _own_rows(relation_logits, labels)
    floored = torch.maximum(own, cut[:, None]).scatter_(1, col, 0.0)
    return log_or_neg_inf(alpha) - lse_c, torch.linalg.vecdot(p, floored), own


def _scratch(buffer: Tensor | None, like: Tensor) -> Tensor | None:
    """A float32 view of `buffer`'s memory shaped as `like`, or None when there is no buffer or it is too small."""
    if buffer is None or buffer.numel() < like.numel():
        return None
    return buffer.view(-1)[: like.numel()].view(like.shape)


def _dot_(a: Tensor, b: Tensor, scratch: Tensor | None) -> Tensor:
    """Row dot products of float32 [B, K] tensors; the products go to `scratch` (may be `b`) when given."""
    if scratch is None:
        return torch.linalg.vecdot(a, b)
    return torch.mul(a, b, out=scratch).sum(dim=-1)


def _own_rows(relation_logits: Tensor, labels: Tensor, out: Tensor | None = None) -> Tensor:
    """C[labels] as float32 [B, K]: a new tensor, or written to `out`."""
    if relation_logits.dtype == torch.float32:
        return torch.index_select(relation_logits, 0, labels, out=out) if out is not None else \
            relation_logits.index_select(0, labels)
    rows = relation_logits.index_select(0, labels).float()
    return rows if out is None else out.copy_(rows)


def _clamp_cut(lowest: Tensor | None, lse_c: Tensor, alpha: float) -> Tensor | None:
    """Per-row C value below which log t is clamped, or None when no off-target entry can be clamped."""
    if lowest is None:
        return None
    if may_sync(lowest) and bool((lowest - lse_c >= LOG_TINY - log_or_neg_inf(alpha)).all()):
        return None
    return lse_c + (LOG_TINY - log_or_neg_inf(alpha))


def _relation_rows_grad(r: Tensor, diff: Tensor, kept: Tensor | None, p_y: Tensor, half: Tensor, alpha: float,
                        col: Tensor) -> Tensor:
    """∂loss/∂C[y] = half·(r_j Σ_k p_k m_k - p_j m_j), m = unclamped (`kept` = p·m), 0 on the own class; in `r`.

    Without clamping Σ_{k≠y} p_k = 1 - p_y and p = diff + α·r off the target, so no [B, K] buffer is needed.
    """
    if kept is None:
        r.mul_((1.0 - alpha - p_y)[:, None] * half).addcmul_(diff, half, value=-1.0)
    else:
        r.mul_(kept.sum(dim=-1)[:, None] * half).addcmul_(kept, half, value=-1.0)
    return r.scatter_(1, col, 0.0)


class SparseLSPP(torch.autograd.Function):
    """Sparse LS++ with hard labels from the slots (`storage.TopNLogits.slot_logs`): no [B, K] target.

    Inputs: logits z [B, K], labels [B], slots [B, N] (never the label), log R at the slots [B, N], log R of each
    tail class [B] (-inf without a tail), the tail size n_tail = K - 1 - N, and α. Off the slots and the label
    every class has the tail's target c = α·R_tail, so
    t·z = (1-α) z_y + α Σ_s R_s z_s + c (Σ z - z_y - Σ_s z_s).
    Gradients go to z and to the two log R inputs (the matrix term), whose autograd graph reaches the parameters.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor,
                n_tail: int, alpha: float, observe: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        col, x = labels[:, None], z if z.dtype == torch.float32 else z.float()
        z_s, r_s, total = x.gather(1, slots), log_r.exp(), x.sum(dim=-1) if n_tail > 0 else None
        p, lse, p_y, z_y = softmax_lse(z, x, col)
        score, wrong = most_probable_wrong(p, labels) if observe else (p_y[:0], labels[:0])
        p_s = p.gather(1, slots)
        tail = alpha * log_r_tail.exp() if n_tail > 0 else torch.zeros_like(log_r_tail)
        t_z = (1.0 - alpha) * z_y + alpha * torch.linalg.vecdot(r_s, z_s)
        if n_tail > 0:
            assert total is not None  # set above whenever n_tail > 0
            t_z = t_z + tail * (total - z_y - z_s.sum(dim=-1))
        p_rest = (1.0 - p_y - p_s.sum(dim=-1)).clamp_min(0.0) if n_tail > 0 else torch.zeros_like(p_y)
        log_t_s, log_t_tail = log_r + log_or_neg_inf(alpha), log_r_tail + log_or_neg_inf(alpha)
        matrix = -p_y * log_target_own(alpha) - torch.linalg.vecdot(p_s, log_t_s.clamp_min(LOG_TINY))
        matrix = matrix - p_rest * log_t_tail.clamp_min(LOG_TINY)
        ctx.alpha, ctx.dtype = alpha, z.dtype
        ctx.save_for_backward(p, labels, slots, p_y, p_s, r_s, tail, torch.where(log_t_s >= LOG_TINY, p_s, 0.0),
                              torch.where(log_t_tail >= LOG_TINY, p_rest, 0.0))
        ctx.mark_non_differentiable(wrong, score)
        return (lse - t_z + matrix) / 2, wrong, score

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        p, labels, slots, p_y, p_s, r_s, tail, p_s_kept, p_rest_kept = ctx.saved_tensors
        half, alpha = grad.mul(0.5), ctx.alpha
        grad_z = None
        if ctx.needs_input_grad[0]:  # p - t: c on the tail, α R_s on the slots, 1-α on the label
            diff = p.sub_(tail[:, None]).scatter_(1, slots, p_s - alpha * r_s)
            diff.scatter_(1, labels[:, None], (p_y - (1.0 - alpha))[:, None])
            grad_z = scale_rows_(diff, half[:, None], ctx.dtype)
        return grad_z, None, None, -p_s_kept * half[:, None], -p_rest_kept * half, None, None, None


def dense_loss(logits: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float) -> Tensor:
    """LS++ per-sample loss [B] for class ids from the K×K relation logits C (`DenseLSPP`; `storage.DenseLogits`)."""
    return DenseLSPP.apply(logits, labels, relation_logits, alpha, torch.is_grad_enabled())


def top_n_loss(logits: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor, n_tail: int,
               alpha: float, observe: bool) -> tuple[Tensor, Tensor, Tensor]:
    """LS++ for class ids from top-N rows, with the confusions when `observe` (`SparseLSPP`; `storage.TopNLogits`)."""
    return SparseLSPP.apply(logits, labels, slots, log_r, log_r_tail, n_tail, alpha, observe)
