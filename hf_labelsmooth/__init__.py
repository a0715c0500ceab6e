"""hf_labelsmooth: class-relation label smoothing (OLS, LS++, LLS, SLR) for timm and Hugging Face."""
from __future__ import annotations

from .losses import RelationLoss, create_loss, get_loss_class, is_loss, list_losses, register_loss
from .relation_matrix import ClassRelationMatrix

__version__ = "0.1.0"
__all__ = [
    "ClassRelationMatrix", "RelationLoss", "create_loss", "get_loss_class", "is_loss", "list_losses", "register_loss",
    "LabelSmoothingTrainingArguments", "LabelSmoothingTrainer", "StochasticLabelRefinery",
]

_LAZY_HF = {"LabelSmoothingTrainingArguments", "LabelSmoothingTrainer"}  # import transformers only when used


def __getattr__(name: str) -> object:
    if name in _LAZY_HF:
        from . import hf

        return getattr(hf, name)
    if name == "StochasticLabelRefinery":  # imports `datasets` only when used
        from .slr import StochasticLabelRefinery

        return StochasticLabelRefinery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
