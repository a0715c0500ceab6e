"""LS++, Label Smoothing++ (SPEC.md "LS++"): learnable non-target logits C, stop-gradient symmetric CE."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._registry import register_loss
from ._learnable import LearnableRelationLoss
from .functional import cross_entropy, log_softmax_except, masked_row_softmax, mix, relation_targets, safe_log

LOG_TINY = math.log(torch.finfo(torch.float32).tiny)


@register_loss("lspp")
class LabelSmoothingPlusPlus(LearnableRelationLoss):
    """Target t = (1-α)·e_y + α·softmax_{k≠y}(C[y]); loss (H(sg(t), p) + H(sg(p), t)) / 2.

    The first term trains only the network, the second only C (stop-gradients, LS++ Table 5). The diagonal
    of R is exactly 0, so the target-class probability is exactly 1-α.

    This loss owns a parameter (`logits`, K×K, zero-initialised, diagonal unused): **add `loss.parameters()`
    to the optimizer** (the authors use the network's optimizer, lr and weight decay), or C never learns.

    Args:
        num_classes: Number of classes K.
        alpha: Smoothing weight (default 0.1).
        top_n: Keep N learnable non-target classes per row (`logits` K×N plus `tail_logits` K, see `_sparse`);
            ``None`` (default) is the dense K×K parameter. N = K-1 equals the dense loss.
        slot_init: K×N class ids to start the slots from (e.g. a prior's top-N); default: y+1, …, y+N mod K.
        refresh_every: Refresh the slots every N training batches (default: at each `end_epoch()`).
        swap_fraction: At most this fraction of a row's slots is swapped per refresh.
        candidates: Width of the per-row table of confused classes recorded between refreshes.
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    default_alpha = 0.1
    relation_weight_decay = None  # None: same weight decay as the network (the authors' setting)
    include_self = False


    def relation_rows(self, classes: Tensor) -> Tensor:
        """softmax over k ≠ class of C[class], float32, zero on the diagonal."""
        if self.top_n is not None:
            return self._sparse_log_rows(classes).exp()
        return masked_row_softmax(self.logits.float(), classes)

    def log_relation_rows(self, classes: Tensor) -> Tensor:
        """log R[classes], [n, K], -inf at each row's own class."""
        if self.top_n is not None:
            return self._sparse_log_rows(classes)
        return log_softmax_except(self.logits.index_select(0, classes).float(), classes)

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        log_p = logits.log_softmax(dim=-1)
        if labels is not None:
            return self._compute_hard(log_p, labels) if self.top_n is None else self._sparse_hard_loss(
                log_p, labels, self.alpha)
        t = mix(target, relation_targets(target, labels, self.relation_rows), self.alpha)
        network_term = cross_entropy(t.detach(), log_p)
        matrix_term = cross_entropy(log_p.detach().exp(), safe_log(t))
        return (network_term + matrix_term) / 2

    def _compute_hard(self, log_p: Tensor, labels: Tensor) -> Tensor:
        """Hard labels from log R directly: log t = log α + log R off the target, log(1-α) on it; no one-hot."""
        log_r = self.log_relation_rows(labels)
        col = labels[:, None]
        if self.alpha == 0.0:
            log_t = torch.full_like(log_r, LOG_TINY)
        else:
            log_t = (log_r + math.log(self.alpha)).clamp_min(LOG_TINY)
        log_t = log_t.scatter(1, col, max(LOG_TINY, math.log(1.0 - self.alpha)) if self.alpha < 1 else LOG_TINY)
        t = log_r.detach().exp().mul_(self.alpha).scatter_(1, col, 1.0 - self.alpha)
        network_term = cross_entropy(t, log_p)
        matrix_term = cross_entropy(log_p.detach().exp(), log_t)
        return (network_term + matrix_term) / 2

    def relation_matrix(self) -> Tensor:
        if self.top_n is not None:
            return self._sparse_relation_matrix()
        classes = torch.arange(self.num_classes, device=self.logits.device)
        return masked_row_softmax(self.logits.detach().float(), classes)
