"""hf_labelsmooth: class-relation label smoothing (OLS, LS++, LLS, SLR) for timm and Hugging Face.

Importing the package needs torch only; the Trainer classes (transformers) and the refinery (datasets) load on
first use, and the timm integration lives in ``hf_labelsmooth.integrations.timm``.
"""
from __future__ import annotations

import importlib
from typing import Any

from .losses import (CrossEntropy, LabelSmoothing, LabelSmoothingPlusPlus, LearnableLabelSmoothing,
                     LearnableRelationLoss, MethodCard, MethodSpec, OnlineLabelSmoothing, RelationLoss, RelationPrior,
                     SoftKL, create_loss, get_loss_class, is_loss, list_losses, register_loss)

__version__ = "0.1.0"

_LAZY = {  # name -> (module, extra): imported on first access
    "LabelSmoothingTrainingArguments": (".integrations.transformers", "transformers"),
    "LabelSmoothingTrainer": (".integrations.transformers", "transformers"),
    "compute_loss_func": (".integrations.transformers", "transformers"),
    "RelationLossFunction": (".integrations.transformers", "transformers"),
    "StochasticLabelRefinery": (".slr", "transformers"),
    "ClassRelationMatrix": (".relations", None),
    "RelationTopK": (".relations", None),
    "load_relations": (".relations", None),
    "save_relations": (".relations", None),
}
__all__ = [
    "CrossEntropy", "LabelSmoothing", "LabelSmoothingPlusPlus", "LearnableLabelSmoothing", "LearnableRelationLoss",
    "MethodCard", "MethodSpec", "OnlineLabelSmoothing", "RelationLoss", "RelationPrior", "SoftKL", "create_loss",
    "get_loss_class", "is_loss", "list_losses", "register_loss", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        return getattr(importlib.import_module(module, __name__), name)
    except ImportError as err:
        if extra is None:
            raise
        raise ImportError(f"Expected the optional dependencies of hf_labelsmooth.{name} but got: {err}. Install "
                          f"them with pip install 'hf_labelsmooth[{extra}]'.") from err
