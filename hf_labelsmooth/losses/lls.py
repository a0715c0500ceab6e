"""LLS, Learnable Label Smoothing (SPEC.md "LLS"): learnable logits Q, R = softmax(Q), symmetric KL."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._registry import register_loss
from .base import RelationLoss
from .functional import kl_divergence, mix, relation_targets, safe_log


@register_loss("lls")
class LearnableLabelSmoothing(RelationLoss):
    """Target t = (1-α)·e_y + α·softmax(Q[y]); loss (KL(t‖p) + KL(p‖t)) / 2, gradients to the network and Q.

    This loss owns a parameter (`logits`, K×K, zero-initialised): **add `loss.parameters()` to the optimizer**
    (the paper trains Q with the network's optimizer), or Q never learns. Keep it out of weight decay
    (`no_weight_decay()` names it, as timm's optimizer factory expects).
    """

    default_alpha = 0.1
    requires_optimizer = True
    relation_weight_decay = 0.0  # the appendix pseudo-code applies no decay to Q

    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        self.logits = nn.Parameter(torch.zeros(num_classes, num_classes))

    def relation_rows(self, classes: Tensor) -> Tensor:
        """softmax(Q[classes]) in float32."""
        return self.logits[classes].float().softmax(dim=-1)

    def compute(self, logits: Tensor, target: Tensor, labels: Tensor | None) -> Tensor:
        t = mix(target, relation_targets(target, labels, self.relation_rows), self.alpha)
        log_p, log_t = logits.log_softmax(dim=-1), safe_log(t)
        return (kl_divergence(t, log_t, log_p) + kl_divergence(log_p.exp(), log_p, log_t)) / 2

    def relation_matrix(self) -> Tensor:
        return self.logits.detach().float().softmax(dim=-1)

    def no_weight_decay(self) -> set[str]:
        return {"logits"}
