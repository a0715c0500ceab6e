"""Fused soft-target (Mixup / CutMix) kernels: one softmax pass over the logits, hand-written backward.

Targets t [B, K] are float32 and built outside (`soft_targets`: (1-α)·t₀ + α·t₀ @ R, gradients to R by autograd);
each kernel gives the logits their gradient in their own dtype and (LS++, LLS) the targets theirs, which autograd
carries to the relation parameters. Identities (m = Σ_k t_k, log p = z - lse): H(t, p) = m·lse - t·z, with
lse = max z - log max p (no second exp pass) and ∂H/∂z = m·p - t. A class without target mass may have a `-inf`
logit (a masked class): its 0·(-inf) term is dropped by the `nansum` that sums t ⊙ z anyway (no extra pass); NaN
logits still give NaN through the row maximum. Maths in float32 whatever the logits' dtype.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..functional import may_sync

RowsFn = Callable[[Tensor], Tensor]
TINY = torch.finfo(torch.float32).tiny
LOWEST = torch.finfo(torch.float32).min  # log p at a -inf logit, so that 0·log p = 0 (LLS)
CHUNK_ELEMENTS = 1 << 24  # top-N soft targets off the CPU: rows built per chunk of classes (64 MiB in float32)


def soft_targets(target: Tensor, rows: RowsFn, alpha: float, dense: bool = True) -> Tensor:
    """t = (1-α)·t₀ + α·t₀ @ R as a new [B, K] tensor of t₀'s dtype (differentiable through `rows` = R[ids]).

    On the CPU (`may_sync`) only the rows that t₀ needs are read: two per sample while no row of t₀ has more than
    two entries (Mixup, CutMix), else those of the classes with mass. Elsewhere (other devices, torch.compile) every
    row, with no data-dependent shape and no host sync: one exact matmul for dense storage (`dense`); for top-N
    storage, whose rows are built per class, the K rows are built and multiplied in chunks of at most
    `CHUNK_ELEMENTS` entries (building all K at once would be the K×K matrix top-N storage exists to avoid).
    """
    if alpha == 0:
        return target.clone()
    k = target.shape[-1]
    if may_sync(target):  # host reads are free on the CPU
        present = torch.sign(target).abs_()  # 1 where t₀ has mass (vectorised, unlike nonzero / argmax / bool ops)
        if bool((present.sum(dim=-1) <= 2).all()):
            return _two_entry_targets(target, present, rows, alpha)
        support = present.amax(dim=0).nonzero().flatten()
        return torch.addmm(target, target[:, support], rows(support), beta=1.0 - alpha, alpha=alpha)
    if dense:
        return torch.addmm(target, target, rows(torch.arange(k, device=target.device)), beta=1.0 - alpha, alpha=alpha)
    step = max(1, CHUNK_ELEMENTS // k)
    out = target * (1.0 - alpha)
    for start in range(0, k, step):  # static bounds: one graph under torch.compile
        classes = torch.arange(start, min(k, start + step), device=target.device)
        out = torch.addmm(out, target[:, start:start + step], rows(classes), alpha=alpha)
    return out


def _two_entry_targets(target: Tensor, present: Tensor, rows: RowsFn, alpha: float) -> Tensor:
    """`soft_targets` for rows with at most two entries: their columns are the first and last columns with mass
    (found by two vectorised maxima), the second weighted 0 when it is the first."""
    k = target.shape[-1]
    ranks = torch.arange(1, k + 1, dtype=present.dtype, device=present.device)
    last = (present * ranks).amax(dim=-1).sub_(1)
    first = (present.mul_(ranks.flip(0))).amax(dim=-1).neg_().add_(k)
    cols = torch.stack([first, last], dim=1).clamp_min_(0).long()  # an empty row (B = 0 aside: none) picks col 0
    weights = target.gather(1, cols)
    weights[:, 1].masked_fill_(cols[:, 0] == cols[:, 1], 0.0)
    classes, cols = torch.unique(cols, return_inverse=True)  # each row of R once (learnable: a softmax per row)
    bags = F.embedding_bag(cols, rows(classes).to(target.dtype), per_sample_weights=weights.mul_(alpha), mode="sum")
    return bags.add_(target, alpha=1.0 - alpha)


def zero_relation_gradient(rows: RowsFn, like: Tensor) -> Tensor:
    """0 joined to the graph of R's parameters (α = 0: their gradient is 0, not None, as DDP expects of every one)."""
    return rows(torch.zeros(1, dtype=torch.long, device=like.device)).sum() * 0.0


def _softmax_lse(logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(float32 logits x (may be `logits`), p = softmax(x), lse [B]) with one exp pass."""
    x = logits if logits.dtype == torch.float32 else logits.float()
    p = torch.softmax(x, dim=-1)
    return x, p, x.amax(dim=-1).sub_(p.amax(dim=-1).log_())


def _keeps_graph() -> bool:
    """Whether the running backward retains the graph (then saved buffers must not be changed in place)."""
    probe = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if probe is None or torch.compiler.is_compiling() else probe()


class SoftCrossEntropy(torch.autograd.Function):
    """H(t, p) per sample for t = (1-a)·t₀ + a·m/K (`uniform`: LS, never built) or t = t₀ (OLS, relation prior,
    soft KL). Returns (loss [B], detached p [B, K]); gradients to the logits only (the targets are data)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, a: float, uniform: bool) -> tuple[Tensor, Tensor]:
        x, p, lse = _softmax_lse(logits)
        mass = target.sum(dim=-1)
        dot = torch.nansum(target * x, dim=-1)  # massless classes: 0·(-inf) = NaN, dropped
        if uniform and a > 0:  # t·x = (1-a)·t₀·x + (a m / K)·Σx
            dot = dot.mul_(1.0 - a).addcmul_(mass, x.sum(dim=-1), value=a / x.shape[-1])
        ctx.save_for_backward(p, target, mass)
        ctx.a, ctx.uniform, ctx.dtype = a, uniform, logits.dtype
        ctx.mark_non_differentiable(p)
        ctx.set_materialize_grads(False)
        return torch.addcmul(dot.neg_(), mass, lse), p

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        p, target, mass = ctx.saved_tensors
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None, None
        g, a = grad[:, None], ctx.a
        if ctx.uniform and a > 0:  # (m·p - (1-a)·t₀ - a·m/K)·g
            out = torch.addcmul((mass[:, None] * g).mul_(-a / p.shape[-1]), p, mass[:, None] * g)
            out.addcmul_(target, g, value=a - 1.0)
        else:
            out = torch.mul(p, mass[:, None] * g).addcmul_(target, g, value=-1.0)
        return out.to(ctx.dtype), None, None, None


def soft_cross_entropy(logits: Tensor, target: Tensor, a: float = 0.0, uniform: bool = False) -> tuple[Tensor, Tensor]:
    """(per-sample H(t, softmax(logits)) float32 [B], detached probabilities [B, K]); see `SoftCrossEntropy`."""
    return SoftCrossEntropy.apply(logits, target, a, uniform)


class SoftLSPP(torch.autograd.Function):
    """LS++ per sample, (H(sg(t), p) + H(sg(p), t)) / 2, log t clamped at log(tiny) (`safe_log`): the logits get
    (m·p - t)/2 (the network term only), t gets -p/(2t) where t >= tiny (the matrix term only)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor) -> Tensor:
        x, p, lse = _softmax_lse(logits)
        mass = target.sum(dim=-1)
        network = torch.addcmul(torch.nansum(target * x, dim=-1).neg_(), mass, lse)
        ctx.unclamped = may_sync(target) and bool((target.amin(dim=-1) >= TINY).all())  # CPU: clamp only if it bites
        log_t = target.log() if ctx.unclamped else target.clamp_min(TINY).log_()
        matrix = torch.linalg.vecdot(p, log_t)  # p = 0 at -inf logits: no NaN
        ctx.save_for_backward(p, target, mass)
        ctx.dtype = logits.dtype
        return network.sub_(matrix).mul_(0.5)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        p, target, mass = ctx.saved_tensors
        half = grad[:, None] * 0.5
        grad_t = None
        if ctx.needs_input_grad[1] and ctx.unclamped:
            grad_t = torch.div(p, target).mul_(-half)
        elif ctx.needs_input_grad[1]:
            grad_t = torch.where(target >= TINY, p / target.clamp_min(TINY), 0.0).mul_(-half)
        grad_z = None
        if ctx.needs_input_grad[0]:
            grad_z = torch.mul(p, mass[:, None] * half).addcmul_(target, half, value=-1.0).to(ctx.dtype)
        return grad_z, grad_t


class SoftLLS(torch.autograd.Function):
    """LLS per sample, ½ Σ_k (t_k - p_k)(log t_k - log p_k) (= (KL(t‖p) + KL(p‖t)) / 2), gradients to the logits,
    t and log t (`log_target`; None: log t is taken here and its gradient folded into t's).

    With d = log t - log p: ∂/∂z = ½[p ⊙ (m + p·d - d) - t], ∂/∂t = ½ d, ∂/∂log t = ½ (t - p).
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, log_target: Tensor | None) -> Tensor:
        x, p, lse = _softmax_lse(logits)
        d = (target.log() if log_target is None else log_target.clone()).sub_(x).add_(lse[:, None])
        d.clamp_max_(-LOWEST)  # -inf logit (p = 0): log p = float32's lowest, so 0·d stays 0
        e = target - p
        pd = torch.linalg.vecdot(p, d)
        ctx.save_for_backward(p, target, d, e, pd)
        ctx.dtype, ctx.fold = logits.dtype, log_target is None
        return torch.linalg.vecdot(e, d).mul_(0.5)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        p, target, d, e, pd = ctx.saved_tensors
        half = grad[:, None] * 0.5
        grad_z = grad_t = grad_lt = None
        if ctx.needs_input_grad[0]:
            shift = (target.sum(dim=-1) + pd)[:, None]
            grad_z = torch.sub(shift, d).mul_(p).sub_(target).mul_(half).to(ctx.dtype)
        if ctx.needs_input_grad[1] and ctx.fold:  # ½(d + (t - p)/t) = ½(d + 1 - p/t)
            grad_t = torch.div(p, target).neg_().add_(d).add_(1.0).mul_(half)
        elif ctx.needs_input_grad[1]:
            grad_t = d * half
        if ctx.needs_input_grad[2]:
            grad_lt = e * half
        return grad_z, grad_t, grad_lt
