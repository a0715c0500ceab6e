"""The math: one loss per module, each registered with its `MethodSpec` (the method's facts). Imports torch only.

Every module of this folder is imported with the package, so a method's file registers itself: adding a method
touches its own file (and, for a fused kernel, one file in `kernels/`), no list here. The names below are the
public classes of the methods shipped so far.
"""
from __future__ import annotations

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):  # registers the methods not named above (in file-name order)
    if not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CrossEntropy", "LabelSmoothing", "LabelSmoothingPlusPlus", "LearnableLabelSmoothing", "LearnableRelationLoss",
    "MethodCard", "MethodSpec", "OnlineLabelSmoothing", "RelationLoss", "RelationPrior", "SoftKL", "create_loss",
    "get_loss_class", "is_loss", "list_losses", "register_loss", "soft_value_loss",
]
