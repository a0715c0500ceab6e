"""The math: one loss per module, each registered with its `MethodSpec` (the method's facts). Imports torch only."""
from __future__ import annotations

from .base import RelationLoss
from .ce import CrossEntropy
from .learnable import LearnableRelationLoss
from .lls import LearnableLabelSmoothing
from .ls import LabelSmoothing
from .lspp import LabelSmoothingPlusPlus
from .ols import OnlineLabelSmoothing
from .registry import MethodCard, MethodSpec, create_loss, get_loss_class, is_loss, list_losses, register_loss
from .relation_prior import RelationPrior
from .soft_kl import SoftKL, soft_value_loss

__all__ = [
    "CrossEntropy", "LabelSmoothing", "LabelSmoothingPlusPlus", "LearnableLabelSmoothing", "LearnableRelationLoss",
    "MethodCard", "MethodSpec", "OnlineLabelSmoothing", "RelationLoss", "RelationPrior", "SoftKL", "create_loss",
    "get_loss_class", "is_loss", "list_losses", "register_loss", "soft_value_loss",
]
