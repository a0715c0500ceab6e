"""hf_labelsmooth: class-relation label smoothing (OLS, LS++, LLS, SLR) for timm and Hugging Face.

Importing the package needs torch only; the Trainer classes (transformers) and the refinery (datasets) load on
first use, and the timm integration lives in ``hf_labelsmooth.integrations.timm``.
"""
from __future__ import annotations

import importlib
from typing import Any

from .losses import (CrossEntropy, LabelSmoothing, LabelSmoothingPlusPlus, LearnableLabelSmoothing,
                     LearnableRelationLoss, OnlineLabelSmoothing, RelationLoss, RelationPrior, SoftKL, create_loss,
                     get_loss_class, is_loss, list_losses, register_loss)

__version__ = "0.1.0"

_LAZY = {  # name -> module: imported on first access (transformers, datasets, safetensors, huggingface_hub)
    "LabelSmoothingTrainingArguments": ".integrations.transformers",
    "LabelSmoothingTrainer": ".integrations.transformers",
    "StochasticLabelRefinery": ".slr",
    "ClassRelationMatrix": ".relations",
    "RelationTopK": ".relations",
    "load_relations": ".relations",
    "save_relations": ".relations",
}
__all__ = [
    "CrossEntropy", "LabelSmoothing", "LabelSmoothingPlusPlus", "LearnableLabelSmoothing", "LearnableRelationLoss",
    "OnlineLabelSmoothing", "RelationLoss", "RelationPrior", "SoftKL", "create_loss", "get_loss_class", "is_loss",
    "list_losses", "register_loss", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
