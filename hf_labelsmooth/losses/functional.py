"""Pure tensor functions behind the losses (float32 in, per-sample values out). No state, no framework imports."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor

RowsFn = Callable[[Tensor], Tensor]
LOG_TINY = math.log(torch.finfo(torch.float32).tiny)  # where float32 log-targets are clamped (α ∈ {0, 1})


_HOST_SHORTCUTS = [True]  # switched off by `host_shortcuts(False)` (tests count the path an accelerator runs)


def may_sync(x: Tensor) -> bool:
    """Whether a shortcut may read a value of `x` on the host: on the CPU (free), never under torch.compile (a graph
    break) nor on other devices (a sync). Both branches of such a shortcut are exact; the other one runs elsewhere.
    Input checks follow it too: raised at once where it is True, else deferred as device-side flags (`losses.checks`).
    """
    return _HOST_SHORTCUTS[0] and x.device.type == "cpu" and not torch.compiler.is_compiling()


@contextmanager
def host_shortcuts(enabled: bool) -> Iterator[None]:
    """Within the block, `may_sync` is False everywhere when `enabled` is False: the CPU then runs the code path of an
    accelerator (no host reads, checks deferred), which the sync-counting tests count."""
    old, _HOST_SHORTCUTS[0] = _HOST_SHORTCUTS[0], enabled
    try:
        yield
    finally:
        _HOST_SHORTCUTS[0] = old


def log_or_neg_inf(x: float) -> float:
    """log(x) of a weight such as α, -inf at 0."""
    return math.log(x) if x > 0 else float("-inf")


def at(x: Tensor, index: Tensor) -> Tensor:
    """`x[i, index[i, 0]]` for each row i: [B] from [B, K] and a [B, 1] column index."""
    return x.gather(1, index).squeeze(1)


def safe_log(x: Tensor) -> Tensor:
    """`log(x)` with zeros mapped to log(tiny) so that 0·log 0 = 0 and no inf/NaN reaches the gradients."""
    return x.clamp_min(torch.finfo(x.dtype).tiny).log()


def cross_entropy(target: Tensor, log_q: Tensor) -> Tensor:
    """H(target, q) = -Σ_k target_k log q_k, per row; terms with target_k = 0 contribute 0 even where log q_k = -inf
    (masked classes), with zero gradients to log q there (nansum drops the 0·(-inf) terms; on the CPU the product +
    nansum is also faster than vecdot). A NaN anywhere else is a defect and reaches the result: a non-finite target
    or a NaN row of log q (NaN/+inf logits) makes the row NaN (`propagate_nan`), so the loss check sees it.
    `target` gets no useful gradient where log q_k = -inf."""
    return propagate_nan(-torch.nansum(target * log_q, dim=-1), target.sum(dim=-1), log_q.amax(dim=-1))


def propagate_nan(value: Tensor, *probes: Tensor) -> Tensor:
    """`value` [B], NaN in each row where a probe [B] is NaN or infinite (a sum or maximum over the row of an input
    that must be finite there): a `nansum` then drops only the 0·(-inf) terms it is meant for, never a defect."""
    for probe in probes:
        value = value + probe.detach().mul(0.0)
    return value


def kl_divergence(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p ‖ q) = Σ_k p_k (log p_k - log q_k), per row; terms with p_k = 0 contribute 0 (also with infinite logs)."""
    return (p * torch.where(p == 0, 0.0, log_p - log_q)).sum(dim=-1)


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """Float32 one-hot rows for class ids (a scatter: `F.one_hot` reads the ids' range on the host; an id outside
    [0, K) still fails in the kernel, never a silent zero row)."""
    return torch.zeros(labels.shape[0], num_classes, device=labels.device).scatter_(1, labels[:, None], 1.0)


def relation_targets(target: Tensor, labels: Tensor | None, rows: RowsFn) -> Tensor:
    """The smoothing part `t @ R`, computing only the rows of R that the batch needs (on the CPU).

    Args:
        target: Dense targets t, [B, K] float32 (one-hot or soft).
        labels: Class ids [B] when the targets are hard, else None.
        rows: Function mapping class ids [n] to the rows R[ids], [n, K].

    Returns:
        [B, K] float32: `R[y]` for hard labels, `t @ R` for soft targets (rows of classes with mass only on the CPU;
        every row where finding them would sync or make shapes depend on the data, `may_sync`).
    """
    if labels is not None:
        return rows(labels)
    if not may_sync(target):  # shapes must not depend on the data (compiled graphs; no host sync elsewhere)
        return target @ rows(torch.arange(target.shape[-1], device=target.device))
    support = target.ne(0).any(dim=0).nonzero().flatten()
    return target[:, support] @ rows(support)


def mix(target: Tensor, smooth: Tensor, alpha: float) -> Tensor:
    """(1-α)·t + α·smooth."""
    return (1.0 - alpha) * target + alpha * smooth


def masked_row_softmax(logits: Tensor, classes: Tensor) -> Tensor:
    """Softmax of rows `logits[classes]` over the K-1 classes other than each row's own class (LS++)."""
    return logits.index_select(0, classes).scatter(1, classes[:, None], float("-inf")).softmax(dim=-1)


def topk_rows(indices: Tensor, values: Tensor, classes: Tensor, include_self: bool = True) -> Tensor:
    """Dense rows R[classes] [n, K] of a top-N table: the stored entries, the rest of each row spread uniformly.

    Args:
        indices: [K, N] class ids per row.
        values: [K, N] their probabilities (row sums <= 1).
        classes: [n] rows to build.
        include_self: Whether the uniform tail covers the row's own class (False for LS++: diagonal 0).
    """
    k, n = indices.shape
    picked, vals = indices.index_select(0, classes), values.index_select(0, classes).float()
    free = k - n - (0 if include_self else 1)
    tail = (1.0 - vals.sum(-1)).clamp_min(0) / max(free, 1)
    rows = tail[:, None].expand(len(classes), k).clone()
    if not include_self:
        rows.scatter_(1, classes[:, None], 0.0)
    return rows.scatter_(1, picked, vals)
