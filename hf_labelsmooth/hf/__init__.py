"""Hugging Face `transformers` integration: training arguments, Trainer, callbacks, data helpers.

Attributes load lazily so that ``import hf_labelsmooth.hf`` does not import transformers until used.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LabelSmoothingTrainingArguments": "training_args",
    "LabelSmoothingTrainer": "trainer",
    "RelationLossCallback": "callbacks",
    "build_relation_loss": "trainer",
    "compute_accuracy": "metrics",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
