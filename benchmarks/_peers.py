"""Peer baselines for `loss_speed.py`: what users copy into their projects today, written from public descriptions.

These are the implementations our losses are measured against (not used by the library). Each is written here from
the method's published description, not copied: the structure (which tensors are built every call) is what the
timing compares. Each computes in float32 from logits of any dtype (as ours do; the cast is part of the step).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PeerOLS(nn.Module):
    """The widely copied OLS re-implementation: a K×K buffer whose columns are the soft targets, read with
    ``index_select``; ``log_softmax``; ``nn.CrossEntropyLoss`` for the hard term; ``index_add_`` of the correct
    predictions' probabilities into a K×K accumulator (swapped at epoch ends, not timed)."""

    def __init__(self, num_classes: int, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = alpha  # weight of the hard term (the paper's α)
        self.register_buffer("soft_targets", torch.full((num_classes, num_classes), 1.0 / num_classes))
        self.register_buffer("accumulated", torch.zeros(num_classes, num_classes))
        self.register_buffer("counts", torch.zeros(num_classes))
        self.hard_loss = nn.CrossEntropyLoss()

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = logits.float()
        log_p = logits.log_softmax(dim=-1)
        if self.training:
            with torch.no_grad():
                p = log_p.exp()
                hit = p.argmax(dim=-1) == labels
                self.accumulated.index_add_(1, labels[hit], p[hit].t())
                self.counts.index_add_(0, labels[hit], torch.ones(int(hit.sum()), device=logits.device))
        soft = -(self.soft_targets.index_select(1, labels).t() * log_p).sum(dim=-1).mean()
        return self.alpha * self.hard_loss(logits, labels) + (1.0 - self.alpha) * soft


class PeerLSPP(nn.Module):
    """The LS++ authors' module, as described: logits C (K×(K-1)) whose softmax is taken over the whole matrix on
    every call and padded to K×K with a zero diagonal; two cross-entropies of the form -Σ a·log(b + 1e-6) with
    stop-gradients, halved."""

    def __init__(self, num_classes: int, alpha: float = 0.1) -> None:
        super().__init__()
        self.num_classes, self.alpha = num_classes, alpha
        self.c = nn.Parameter(torch.zeros(num_classes, num_classes - 1))
        self.register_buffer("off_diagonal", ~torch.eye(num_classes, dtype=torch.bool))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = logits.float()
        rows = self.c.softmax(dim=1)
        full = rows.new_zeros(self.num_classes, self.num_classes).masked_scatter(self.off_diagonal, rows)
        target = (1.0 - self.alpha) * F.one_hot(labels, self.num_classes).float() + self.alpha * full[labels]
        p = logits.softmax(dim=1)
        network = -(target.detach() * (p + 1e-6).log()).sum(dim=1).mean()
        matrix = -(p.detach() * (target + 1e-6).log()).sum(dim=1).mean()
        return (network + matrix) / 2


class PeerLLS(nn.Module):
    """The LLS appendix pseudo-code in plain autograd: Q (K×K) zeros, target (1-α)·e_y + α·softmax(Q[y]), loss
    (KL(t‖p) + KL(p‖t)) / 2."""

    def __init__(self, num_classes: int, alpha: float = 0.1) -> None:
        super().__init__()
        self.num_classes, self.alpha = num_classes, alpha
        self.q = nn.Parameter(torch.zeros(num_classes, num_classes))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        pred = logits.float().softmax(dim=1)
        target = (1.0 - self.alpha) * F.one_hot(labels, self.num_classes) + self.alpha * self.q[labels].softmax(1)
        return (_kl(target, pred) + _kl(pred, target)) / 2


def _kl(a: Tensor, b: Tensor) -> Tensor:
    return (a * (a.log() - b.log())).sum(dim=1).mean()


PEERS = {"ols": PeerOLS, "lspp": PeerLSPP, "lls": PeerLLS}
