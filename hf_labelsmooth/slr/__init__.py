"""Stochastic Label Refinery (docs/methods.md "soft_kl"): soft labels refined by k-fold out-of-fold predictions.

The adapters (timm loop, Hugging Face Trainer) are imported on first access, so importing this package does not
import transformers or timm.
"""
from __future__ import annotations

import importlib
from typing import Any

from .refinery import StochasticLabelRefinery, derive_seed, initial_labels, m_step, make_folds, with_labels

_ADAPTERS = ("TimmSLRAdapter", "HFTrainerSLRAdapter", "soft_loss_func")

__all__ = ["StochasticLabelRefinery", "derive_seed", "initial_labels", "m_step", "make_folds", "with_labels",
           *_ADAPTERS]


def __getattr__(name: str) -> Any:
    if name in _ADAPTERS:
        return getattr(importlib.import_module(f"{__name__}.adapters"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
