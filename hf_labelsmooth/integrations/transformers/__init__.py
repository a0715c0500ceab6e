"""Hugging Face `transformers` integration: training arguments, Trainer, callback and checkpointed loss state.

This package imports transformers (the ``[transformers]`` extra).
"""
from __future__ import annotations

from .callbacks import RelationLossCallback
from .trainer import LabelSmoothingTrainer
from .training_args import LabelSmoothingTrainingArguments, build_relation_loss

__all__ = ["LabelSmoothingTrainer", "LabelSmoothingTrainingArguments", "RelationLossCallback", "build_relation_loss"]
