"""Label smoothing (Szegedy et al.): target (1-ε)·e_y + ε/K; equals F.cross_entropy(label_smoothing=ε)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import RelationLoss
from .functional import cross_entropy
from .kernels.fused_ce import smoothed_cross_entropy
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
        if self.alpha > 0:  # α > 0: every class has target mass, so -inf logits give inf
            return F.cross_entropy(logits.float(), target, label_smoothing=self.alpha, reduction="none",
                                   ignore_index=NO_IGNORE_INDEX)
        return cross_entropy(target, logits.float().log_softmax(dim=-1))  # α = 0: masked classes may have -inf logits

    def relation_matrix(self) -> Tensor:
        return torch.full((self.num_classes, self.num_classes), 1.0 / self.num_classes)
