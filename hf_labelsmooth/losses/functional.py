"""Pure tensor functions behind the losses (float32 in, per-sample values out). No state, no framework imports."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

RowsFn = Callable[[Tensor], Tensor]


def safe_log(x: Tensor) -> Tensor:
    """`log(x)` with zeros mapped to log(tiny) so that 0·log 0 = 0 and no inf/NaN reaches the gradients."""
    return x.clamp_min(torch.finfo(x.dtype).tiny).log()


def cross_entropy(target: Tensor, log_q: Tensor) -> Tensor:
    """H(target, q) = -Σ_k target_k log q_k, per row (a fused row dot product: no [B, K] temporary)."""
    return -torch.linalg.vecdot(target, log_q)


def kl_divergence(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p ‖ q) = Σ_k p_k (log p_k - log q_k), per row (terms with p_k = 0 contribute 0)."""
    return (p * (log_p - log_q)).sum(dim=-1)


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """Float32 one-hot rows for class ids."""
    return F.one_hot(labels, num_classes).to(torch.float32)


def relation_targets(target: Tensor, labels: Tensor | None, rows: RowsFn) -> Tensor:
    """The smoothing part `t @ R`, computing only the rows of R that the batch needs.

    Args:
        target: Dense targets t, [B, K] float32 (one-hot or soft).
        labels: Class ids [B] when the targets are hard, else None.
        rows: Function mapping class ids [n] to the rows R[ids], [n, K].

    Returns:
        [B, K] float32: `R[y]` for hard labels, `t @ R` for soft targets (rows of classes with mass only).
    """
    if labels is not None:
        return rows(labels)
    support = target.ne(0).any(dim=0).nonzero().flatten()
    return target[:, support] @ rows(support)


def mix(target: Tensor, smooth: Tensor, alpha: float) -> Tensor:
    """(1-α)·t + α·smooth."""
    return (1.0 - alpha) * target + alpha * smooth


def mix_targets(target: Tensor | None, labels: Tensor | None, smooth: Tensor, alpha: float,
                inplace: bool = False) -> Tensor:
    """(1-α)·t + α·smooth; for hard labels (`labels` given) adds 1-α at each row's class, without a one-hot.

    `inplace=True` reuses `smooth` (a fresh tensor that needs no gradient) and saves a [B, K] allocation.
    """
    if labels is None:
        return mix(target, smooth, alpha)
    scaled = smooth.mul_(alpha) if inplace else smooth * alpha  # fresh: the in-place scatter is autograd-safe
    return scaled.scatter_add_(1, labels[:, None], scaled.new_full((len(labels), 1), 1.0 - alpha))


def log_softmax_except(rows: Tensor, classes: Tensor) -> Tensor:
    """log-softmax of `rows` [n, K] over the K-1 columns other than `classes` [n] (whose entry is -inf)."""
    return rows.scatter(1, classes[:, None], float("-inf")).log_softmax(dim=-1)


def masked_row_softmax(logits: Tensor, classes: Tensor) -> Tensor:
    """Softmax of rows `logits[classes]` over the K-1 classes other than each row's own class (LS++)."""
    rows = logits[classes]
    own = F.one_hot(classes, logits.shape[-1]).bool()
    return rows.masked_fill(own, float("-inf")).softmax(dim=-1)
