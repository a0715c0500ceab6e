"""LS++, Label Smoothing++ (SPEC.md "LS++"): learnable non-target logits C, stop-gradient symmetric CE."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._registry import register_loss
from .base import RelationLoss
from .functional import cross_entropy, masked_row_softmax, mix, relation_targets, safe_log


@register_loss("lspp")
class LabelSmoothingPlusPlus(RelationLoss):
    """Target t = (1-α)·e_y + α·softmax_{k≠y}(C[y]); loss (H(sg(t), p) + H(sg(p), t)) / 2.

    The first term trains only the network, the second only C (stop-gradients, LS++ Table 5). The diagonal
    of R is exactly 0, so the target-class probability is exactly 1-α.

    This loss owns a parameter (`logits`, K×K, zero-initialised, diagonal unused): **add `loss.parameters()`
    to the optimizer** (the authors use the network's optimizer, lr and weight decay), or C never learns.
    """

    default_alpha = 0.1
    requires_optimizer = True
    relation_weight_decay = None  # None: same weight decay as the network (the authors' setting)

    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        self.logits = nn.Parameter(torch.zeros(num_classes, num_classes))

    def relation_rows(self, classes: Tensor) -> Tensor:
        """softmax over k ≠ class of C[class], float32, zero on the diagonal."""
        return masked_row_softmax(self.logits.float(), classes)

    def compute(self, logits: Tensor, target: Tensor, labels: Tensor | None) -> Tensor:
        t = mix(target, relation_targets(target, labels, self.relation_rows), self.alpha)
        log_p = logits.log_softmax(dim=-1)
        network_term = cross_entropy(t.detach(), log_p)
        matrix_term = cross_entropy(log_p.detach().exp(), safe_log(t))
        return (network_term + matrix_term) / 2

    def relation_matrix(self) -> Tensor:
        classes = torch.arange(self.num_classes, device=self.logits.device)
        return masked_row_softmax(self.logits.detach().float(), classes)
