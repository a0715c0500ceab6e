"""Closed forms of the sparse losses for hard labels: no dense [B, K] target, only gathers and row sums.

A sparse row is a few explicit entries (the slots, and the own class y) plus a *tail* of classes sharing one value
c. Every sum over the tail is a full-row sum minus the explicit entries, e.g. Σ_tail log p = Σ_k log p_k − Σ_slots
log p. So each loss needs the log-softmax of the logits, its row sum (and, for LLS, the row's Σ p log p), and
gathers at B×(N+1) positions. Rows without tail classes (N = K, or K-1 for LS++) drop the tail terms exactly.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .functional import safe_log

LOG_TINY = math.log(torch.finfo(torch.float32).tiny)


def lls_hard(log_p: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor, n_tail: int,
             alpha: float) -> Tensor:
    """(KL(t‖p) + KL(p‖t)) / 2 = ½ Σ_k (t_k - p_k)(log t_k - log p_k), t = (1-α)e_y + α R[y], in closed form.

    Args:
        log_p: [B, K] log-probabilities. labels: [B]. slots: [B, N] class ids of R[y]'s slots.
        log_r: [B, N] log R at the slots. log_r_tail: [B] log R of each tail class. n_tail: tail size K - N.
        alpha: Smoothing weight.
    """
    y = labels[:, None]
    own_slot = slots == y
    own_in_tail = ~own_slot.any(dim=-1)
    c = alpha * log_r_tail.exp()  # target of each tail class
    t = torch.cat([alpha * log_r.exp() + (1.0 - alpha) * own_slot, (c + 1.0 - alpha)[:, None]], dim=1)
    weight = torch.cat([torch.ones_like(log_r), own_in_tail[:, None].float()], dim=1)  # y counted once
    lp = log_p.gather(1, torch.cat([slots, y], dim=1))
    p = lp.exp()
    explicit = (weight * (t - p) * (safe_log(t) - lp)).sum(dim=-1)
    n_rest = n_tail - own_in_tail.long()
    log_c = safe_log(c)
    p_full = log_p.exp()
    rest = (n_rest * c * log_c - c * (log_p.sum(dim=-1) - (weight * lp).sum(dim=-1))
            - log_c * (1.0 - (weight * p).sum(dim=-1))
            + torch.linalg.vecdot(p_full, log_p) - (weight * p * lp).sum(dim=-1))
    return (explicit + torch.where(n_rest > 0, rest, 0.0)) / 2


def lspp_hard(log_p: Tensor, labels: Tensor, slots: Tensor, log_r: Tensor, log_r_tail: Tensor, n_tail: int,
              alpha: float) -> Tensor:
    """(H(sg(t), p) + H(sg(p), t)) / 2 with t = (1-α)e_y + α R[y] (R[y, y] = 0), in closed form.

    Arguments as `lls_hard`; the slots never hold y and n_tail = K - 1 - N.
    """
    lp_y = log_p.gather(1, labels[:, None]).squeeze(1)
    lp_s = log_p.gather(1, slots)
    c = alpha * log_r_tail.detach().exp()
    lp_rest = log_p.sum(dim=-1) - lp_s.sum(dim=-1) - lp_y
    network = -(1.0 - alpha) * lp_y - alpha * (log_r.detach().exp() * lp_s).sum(dim=-1)
    if n_tail > 0:
        network = network - c * lp_rest
    log_alpha = math.log(alpha) if alpha > 0 else float("-inf")
    log_t_y = max(LOG_TINY, math.log(1.0 - alpha)) if alpha < 1 else LOG_TINY
    p_y, p_s = lp_y.detach().exp(), lp_s.detach().exp()
    matrix = -p_y * log_t_y - (p_s * (log_r + log_alpha).clamp_min(LOG_TINY)).sum(dim=-1)
    if n_tail > 0:
        p_rest = (1.0 - p_y - p_s.sum(dim=-1)).clamp_min(0.0)
        matrix = matrix - p_rest * (log_r_tail + log_alpha).clamp_min(LOG_TINY)
    return (network + matrix) / 2
