"""Hugging Face `transformers` integration: training arguments, Trainer, callback and checkpointed loss state.

This package imports transformers (the ``[transformers]`` extra).
"""
from __future__ import annotations

from .callbacks import RelationLossCallback
from .loss_func import RelationLossFunction, compute_loss_func
from .trainer import LabelSmoothingTrainer
from .training_args import LabelSmoothingTrainingArguments, build_relation_loss

__all__ = ["LabelSmoothingTrainer", "LabelSmoothingTrainingArguments", "RelationLossCallback", "RelationLossFunction",
           "build_relation_loss", "compute_loss_func"]
