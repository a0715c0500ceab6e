"""Fused LLS for hard labels: forward and hand-written backward with a few passes over the [B, K] logits.

The loss ½ Σ_k (t_k - p_k)(log t_k - log p_k) with t = (1-α)e_y + α·R[y], p = softmax(z), is expanded so that no
[B, K] logarithm is taken: off the label, log t_k - log p_k is a per-row shift of (Q[y,k] - z_k) (dense) or of z_k
(sparse tail), the shifts cancel because Σ(t - p) = 0, and only column y (and the slots) need a correction. The
maths is float32 whatever the logits' dtype; gradients come back in the logits' dtype. For α = 0, log t is
log(tiny) off the label (as `safe_log`) and the relation gets zero gradients.

Both gradients are per-row multiples (the upstream gradient) of [B, K] rows that the forward builds in the buffers
of its own products, so the backward only scales them: in place, unless the graph is retained (then a copy).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .wrong_class import most_probable_wrong
from ..functional import LOG_TINY, at, log_or_neg_inf, may_sync

NORMAL = 1e-30  # q_y above this has full float32 precision: log q_y = log(q_y)


def _keeps_graph() -> bool:
    """Whether the running backward retains the graph (then saved buffers must not be reused); True if unknown or
    compiling (compiled graphs do not reuse buffers in place anyway)."""
    probe = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if probe is None or torch.compiler.is_compiling() else probe()


def _dense_constants(alpha: float, num_classes: int, device: torch.device) -> tuple[Tensor, ...]:
    """`_make_dense_constants`, cached in eager mode (under torch.compile they become constants of the graph)."""
    if torch.compiler.is_compiling():
        return _make_dense_constants(alpha, num_classes, device)
    return _cached_dense_constants(alpha, num_classes, device)


def _make_dense_constants(alpha: float, num_classes: int, device: torch.device) -> tuple[Tensor, ...]:
    """(α, 1-α, log α, M^T [5, 8], bias [5, 1], backward factors [2, 1, 1]): bias + M^T f = the coefficients [5, B].

    f = (p·w, q·w, w_y, δ, p_y δ, q_y δ, p_y, p_y e^δ). With e = 1 + p·w - p_y δ, fix_z = p_y δ - (1-α) and
    fix_q = p_y (1 - e^δ) - α q_y δ the rows are (-e, (1 - α q·w - fix_q)/α, -fix_z, fix_q/α, loss); the two /α
    rows are 0 for α = 0 (no gradient to Q), where log α is taken as log(tiny) + log K and Q[y] as 0, so that
    log(α q_y) = log(tiny) as `safe_log` gives.
    """
    a, b, inv = alpha / 2, (1.0 - alpha) / 2, 1.0 / alpha if alpha > 0 else 0.0
    m_t = [[-1, 0, 0, 0, 1, 0, 0, 0], [0, -inv * alpha, 0, 0, 0, inv * alpha, -inv, inv], [0, 0, 0, 0, -1, 0, 0, 0],
           [0, 0, 0, 0, 0, -inv * alpha, inv, -inv], [-0.5, a, b, -b, 0.5, -a, 0, 0]]
    log_alpha = math.log(alpha) if alpha > 0 else LOG_TINY + math.log(num_classes)
    consts = [torch.tensor(v, device=device) for v in (alpha, 1.0 - alpha, log_alpha)]
    bias = torch.tensor([[-1.0], [inv], [1.0 - alpha], [0.0], [0.0]], device=device)
    factors = torch.tensor([-0.5, alpha / 2], device=device)[:, None, None]
    return (*consts, torch.tensor(m_t, device=device), bias, factors)


_cached_dense_constants = functools.lru_cache(maxsize=64)(_make_dense_constants)


def _dense_rows(zf: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """The [B, K] work: (buffer [4, B, K] = (p, q = softmax(Q[y]), p ⊙ w, q ⊙ w) with w = Q[y] - z, f [8, B])."""
    buf = zf.new_empty((4, *zf.shape))
    p, q, pw_rows, w = buf.unbind(0)
    torch.softmax(zf, dim=-1, out=p)
    if alpha > 0:
        torch.index_select(relation_logits.float(), 0, labels, out=w)
    else:
        w.zero_()
    torch.softmax(w, dim=-1, out=q)
    log_q_y = _log_own(w, q, labels)
    torch.mul(p, w.sub_(zf), out=pw_rows)
    p_y, q_y, _, w_y = buf.gather(2, labels.view(1, -1, 1).expand(4, -1, -1)).view(4, -1).unbind(0)
    pw, qw = _row_sums(buf, w, q)
    a, one_minus_a, log_a = _dense_constants(alpha, zf.shape[1], zf.device)[:3]
    lt1_y = log_q_y.add_(log_a)  # log(α q_y), exact
    delta = lt1_y - (lt1_y if alpha == 1 else torch.addcmul(one_minus_a, q_y, a).log())  # log(α q_y) - log t_y
    return buf, torch.stack([pw, qw, w_y, delta, p_y * delta, q_y * delta, p_y, p_y * delta.exp()])


def _log_own(relation_rows: Tensor, q: Tensor, labels: Tensor) -> Tensor:
    """log q_y from Q[y] [B, K] and q = softmax(Q[y]); exact also where q_y is below float32's normal range (Q[y, y]
    ~70+ below its row max): there Q_yy - logsumexp(Q[y]). The CPU checks first (one host sync); other devices and
    compiled graphs always take the exact form (`may_sync`)."""
    q_y = at(q, labels[:, None])
    if may_sync(q) and bool((q_y >= NORMAL).all()):
        return q_y.log()
    return at(relation_rows, labels[:, None]) - relation_rows.amax(dim=-1) + q.amax(dim=-1).log()  # - lse(Q[y])


def _row_sums(buf: Tensor, w: Tensor, q: Tensor) -> Tensor:
    """(p·w, q·w) [2, B] once slot 2 of `buf` holds p ⊙ w: turns w (slot 3) into q ⊙ w in place."""
    w.mul_(q)
    return buf[2:].sum(dim=-1)


class DenseHardLLS(torch.autograd.Function):
    """Per-sample LLS [B] (float32) of logits z [B, K] and labels [B] with dense relation logits Q [K, K].

    With w = Q[y] - z and δ = log(α q_y) - log t_y, the loss is (α q·w - p·w + (1-α) w_y - (t_y - p_y) δ) / 2,
    ∂/∂z = -½(p ⊙ w - e p + α q) and ∂/∂Q[y] = (α/2)(q ⊙ w + (2h/α) q - p/α), each plus a fix at column y,
    built in place of p ⊙ w and q ⊙ w; the backward scales them and adds the B rows into a zero K×K
    gradient.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float) -> Tensor:
        buf, feats = _dense_rows(logits.float(), labels, relation_logits, alpha)
        consts = _dense_constants(alpha, logits.shape[1], logits.device)
        coef = torch.addmm(consts[4], consts[3], feats)
        neg_e, h2, *_ = coef.unsqueeze(-1).unbind(0)
        p, q, rows_z, rows_q = buf.unbind(0)
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[2]
        if need:  # rows (z, Q[y]) = (p ⊙ w - e p + α q, q ⊙ w + (2h/α) q - p/α), each plus its fix at y
            rows_z.addcmul_(p, neg_e).add_(q, alpha=alpha)
            rows_q.addcmul_(q, h2).add_(p, alpha=-1.0 / alpha if alpha > 0 else 0.0)
            buf[2:].scatter_add_(2, labels.view(1, -1, 1).expand(2, -1, -1), coef[2:4, :, None])
        ctx.save_for_backward(buf[2:] if need else None, labels, consts[5])
        ctx.alpha, ctx.z_dtype, ctx.q_like = alpha, logits.dtype, (relation_logits.shape, relation_logits.dtype)
        return coef[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
        rows, labels, factors = ctx.saved_tensors
        scale = grad[:, None] * factors  # [2, B, 1]: (-1/2, α/2) times the upstream gradient
        rows_z, rows_q = (rows.mul_(scale) if not _keeps_graph() else rows * scale).unbind(0)
        grad_z = grad_q = None
        if ctx.needs_input_grad[2]:
            grad_q = torch.zeros(ctx.q_like[0], dtype=torch.float32, device=labels.device)
            grad_q = grad_q.index_add_(0, labels, rows_q) if ctx.alpha > 0 else grad_q
            grad_q = grad_q if ctx.q_like[1] == torch.float32 else grad_q.to(ctx.q_like[1])
        if ctx.needs_input_grad[0]:
            grad_z = rows_z if ctx.z_dtype == torch.float32 else rows_z.to(ctx.z_dtype)
        return grad_z, None, grad_q, None


def _observe_lse(zf: Tensor, p: Tensor, labels: Tensor, observe: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(logsumexp(z), most probable wrong class, its probability); the last two are empty unless `observe`."""
    if not observe:
        return zf.amax(dim=-1) - p.amax(dim=-1).log(), labels[:0], p[:0, 0]
    score, wrong = most_probable_wrong(p, labels)
    top = torch.where(at(p, labels[:, None]) >= score, labels, wrong)[:, None]
    return at(zf, top) - at(p, top).log(), wrong, score


def _log_or_tiny(log_t: Tensor) -> Tensor:
    """log t exact, also below float32's smallest normal (α·R underflowing); log(tiny) only where t = 0 exactly."""
    return torch.where(torch.isneginf(log_t), LOG_TINY, log_t)


def _sparse_targets(labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor,
                    alpha: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """At the slots and (last column) the label: t, log t (log tiny where t = 0), log(α R) and the weight 1 of each
    entry (the label column counts only when the label is in the tail; its α R part is the tail value c)."""
    own = slots == labels[:, None]
    lt1 = log_or_neg_inf(alpha) + torch.cat([log_r, log_r_tail[:, None]], dim=1)
    mix = torch.cat([own, torch.ones_like(own[:, :1])], dim=1)
    lt = _log_or_tiny(torch.where(mix, torch.logaddexp(lt1, lt1.new_tensor(log_or_neg_inf(1.0 - alpha))), lt1))
    weight = torch.cat([torch.ones_like(log_r), (~own.any(dim=-1, keepdim=True)).float()], dim=1)
    return lt1.exp() + (1.0 - alpha) * mix, lt, lt1, weight


class SparseHardLLS(torch.autograd.Function):
    """Per-sample sparse LLS [B] (float32) from logits z [B, K], labels, the slots [B, N] of R[y], log R at the
    slots [B, N] and of each tail class [B] (`n_tail` of them); also returns (non-differentiable) the most probable
    wrong class of each row and its probability when `observe` (for the slot refresh; empty tensors otherwise).

    Off the slots and the label t is the tail value c, so the [B, K] work is softmax, Σ z and Σ p z; ∂/∂z is
    ½[p ⊙ (z - m) - c] there, built in the forward in place of p ⊙ z, and exact values are set at the slots.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor,
                n_tail: int, alpha: float, observe: bool) -> tuple[Tensor, Tensor, Tensor]:
        zf, cols = logits.float(), torch.cat([slots, labels[:, None]], dim=1)
        z_e, sum_z, p = zf.gather(1, cols), zf.sum(dim=-1), zf.softmax(dim=-1)
        lse, wrong, score = _observe_lse(zf, p, labels, observe)
        lp, pe = z_e - lse[:, None], p.gather(1, cols)
        rows = zf.mul_(p) if zf is not logits else torch.mul(zf, p)  # p ⊙ z, then the gradient rows
        t, lt, lt1, wt = _sparse_targets(labels, slots, log_r, log_r_tail, alpha)
        n_rest, c, lc = n_tail - wt[:, -1], lt1[:, -1].exp(), _log_or_tiny(lt1[:, -1])  # tail: size, t, log t
        plp = rows.sum(dim=-1) - lse  # Σ p log p
        s_lp = sum_z - zf.shape[1] * lse - (wt * lp).sum(dim=-1)  # Σ over the tail of log p
        s_p, s_plp = 1.0 - (wt * pe).sum(dim=-1), plp - (wt * pe * lp).sum(dim=-1)
        rest = torch.where(n_rest > 0, n_rest * c * lc - c * s_lp - lc * s_p + s_plp, 0.0)
        d = plp - (wt * pe * lt).sum(dim=-1) - torch.where(n_rest > 0, lc * s_p, 0.0)  # Σ_k p_k (log p_k - log t_k)
        if ctx.needs_input_grad[0]:  # tail: p ⊙ z - (lse + log c + d - 1) p - c; exact at the slots and the label
            rows.addcmul_(p, (1.0 - lse - lc - d)[:, None]).sub_(c[:, None])
            g = pe - t + pe * (lp - lt - d[:, None])
            own = cols[:, :-1] == cols[:, -1:]
            label_col = torch.where(wt[:, -1:] > 0, g[:, -1:], (own * g[:, :-1]).sum(dim=-1, keepdim=True))
            rows.scatter_(1, cols, torch.cat([g[:, :-1], label_col], dim=1))
        ctx.save_for_backward(rows if ctx.needs_input_grad[0] else None, lp, pe, t, lt, lt1, wt, n_rest, s_lp, s_p)
        ctx.alpha, ctx.z_dtype = alpha, logits.dtype
        ctx.mark_non_differentiable(wrong, score)
        return (((wt * (t - pe) * (lt - lp)).sum(dim=-1) + rest) / 2), wrong, score

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        rows, lp, pe, t, lt, lt1, wt, n_rest, s_lp, s_p = ctx.saved_tensors
        s = grad[:, None] / 2
        grad_z = grad_r = grad_tail = None
        if rows is not None:
            grad_z = rows.mul_(s) if not _keeps_graph() else rows * s
            grad_z = grad_z if ctx.z_dtype == torch.float32 else grad_z.to(ctx.z_dtype)
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[4]:  # α R ⊙ dL/dt in the log domain; 0 for α = 0
            c, lc = lt1[:, -1].exp(), _log_or_tiny(lt1[:, -1])
            g = (lt1.exp() * (lt + 1.0 - lp) - pe * (lt1 - lt).exp()) * s
            tail = torch.where(n_rest > 0, n_rest * c * (lc + 1.0) - c * s_lp - s_p, 0.0) * s[:, 0]
            grad_r, grad_tail = g[:, :-1], tail + wt[:, -1] * g[:, -1]
            if ctx.alpha == 0:
                grad_r, grad_tail = torch.zeros_like(grad_r), torch.zeros_like(grad_tail)
        return grad_z, None, None, grad_r, grad_tail, None, None, None


def dense_loss(logits: Tensor, labels: Tensor, relation_logits: Tensor, alpha: float) -> Tensor:
    """LLS per-sample loss [B] for class ids from the K×K relation logits Q (`DenseHardLLS`; `storage.DenseLogits`)."""
    return DenseHardLLS.apply(logits, labels, relation_logits, alpha)


def top_n_loss(logits: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor, n_tail: int,
               alpha: float, observe: bool) -> tuple[Tensor, Tensor, Tensor]:
    """LLS for class ids from top-N rows, with the confusions when `observe` (`SparseHardLLS`; `storage.TopNLogits`)."""
    return SparseHardLLS.apply(logits, labels, slots, log_r, log_r_tail, n_tail, alpha, observe)
