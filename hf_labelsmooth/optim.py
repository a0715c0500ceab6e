"""Optimizer parameter groups for losses that own a class-relation matrix (LS++, LLS)."""
from __future__ import annotations

from typing import Any

from torch import nn

from .losses.base import RelationLoss


def relation_param_groups(loss: RelationLoss, lr: float, weight_decay: float | None = None,
                          network_weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Parameter groups that train a loss's own matrix; empty for losses without parameters.

    Args:
        loss: The loss module.
        lr: Learning rate of the matrix.
        weight_decay: Weight decay of the matrix; ``None`` takes the method's default
            (`loss.relation_weight_decay`, where ``None`` means `network_weight_decay`).
        network_weight_decay: The network's weight decay, used when the method follows it (LS++).

    Returns:
        A list with at most one param group, to append to the network's groups.
    """
    params = [p for p in loss.parameters() if p.requires_grad]
    if not params:
        return []
    if weight_decay is None:
        weight_decay = network_weight_decay if loss.relation_weight_decay is None else loss.relation_weight_decay
    return [{"params": params, "lr": lr, "weight_decay": weight_decay, "name": "relation_matrix"}]


def module_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups for a network: decayed weights, and biases/norms (1-d tensors) without decay."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
