"""Plain cross-entropy (the hard-label baseline): R = I, no smoothing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import RelationLoss
from .kernels.fused_soft import soft_cross_entropy
from .registry import MethodSpec, register_loss
from .validation import NO_IGNORE_INDEX


@register_loss(MethodSpec(name="ce", default_alpha=0.0))
class CrossEntropy(RelationLoss):
    """Cross-entropy against hard or soft targets. `alpha` must stay 0 (use ``"ls"`` for smoothing)."""

    dense_hard_targets = False

    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        if self.alpha != 0.0:
            raise ValueError(f"Expected `alpha` = 0 for 'ce' but got {self.alpha}; use create_loss('ls') to smooth.")

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        if labels is not None:
            return F.cross_entropy(logits, labels, reduction="none", ignore_index=NO_IGNORE_INDEX)
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        return soft_cross_entropy(logits, target)[0]  # fused; -inf logits on massless classes give finite terms

    def relation_matrix(self) -> Tensor:
        return torch.eye(self.num_classes)
