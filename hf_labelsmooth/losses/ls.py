"""Label smoothing (Szegedy et al.): target (1-ε)·e_y + ε/K; equals F.cross_entropy(label_smoothing=ε)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import RelationLoss
from .kernels.fused_ce import smoothed_cross_entropy
from .kernels.fused_soft import soft_cross_entropy
from .registry import MethodSpec, register_loss
from .validation import NO_IGNORE_INDEX


FUSED_FROM_K = 2048  # float32 logits: torch's kernel has fewer ops (small K); the fused one fewer passes (large K)


@register_loss(MethodSpec(name="ls", default_alpha=0.1))
class LabelSmoothing(RelationLoss):
    """Uniform label smoothing with ε = `alpha` (default 0.1); R has every entry 1/K."""

    dense_hard_targets = False
    casts_logits = True

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        if labels is not None and (logits.dtype != torch.float32 or logits.shape[-1] >= FUSED_FROM_K):
            return smoothed_cross_entropy(logits, labels, self.alpha)[0]  # one exp pass, no float32 copy of bf16
        if labels is not None:
            return F.cross_entropy(logits.float(), labels, label_smoothing=self.alpha, reduction="none",
                                   ignore_index=NO_IGNORE_INDEX)
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        if self.alpha > 0 and logits.dtype == torch.float32 and logits.shape[-1] < FUSED_FROM_K:  # as for class ids
            return F.cross_entropy(logits, target, label_smoothing=self.alpha, reduction="none",
                                   ignore_index=NO_IGNORE_INDEX)  # α > 0: every class has mass, -inf logits give inf
        return soft_cross_entropy(logits, target, self.alpha, uniform=True)[0]  # fused; -inf on massless classes

    def relation_matrix(self) -> Tensor:
        return torch.full((self.num_classes, self.num_classes), 1.0 / self.num_classes)
