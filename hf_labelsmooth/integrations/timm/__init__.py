"""timm integration: the loss factory with our names, and a task that trains and checkpoints learnable matrices.

This package imports timm (the ``[timm]`` extra): ``from hf_labelsmooth.integrations.timm import ...``.
"""
from __future__ import annotations

from .loss import TIMM_LOSS_TYPES, create_classification_loss, is_relation_loss_type, list_classification_loss_types
from .task import RelationClassificationTask, RelationTrainableModule, add_relation_param_group

__all__ = [
    "TIMM_LOSS_TYPES", "RelationClassificationTask", "RelationTrainableModule", "add_relation_param_group",
    "create_classification_loss", "is_relation_loss_type", "list_classification_loss_types",
]
