"""`add_relation_param_group`: a learnable matrix (LS++, LLS) as its own param group of timm's optimizer.

Under timm the matrix is a param group of the model's optimizer, not an optimizer of its own as under the Trainer:
train.py builds one optimizer from the trainable module (where the matrix lives, DDP-wrapped with the model) and
checkpoints, schedules and steps only that one.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses import RelationLoss
from ...options import RelationOptions

__all__ = ["add_relation_param_group"]


def add_relation_param_group(optimizer: torch.optim.Optimizer, criterion: nn.Module, lr: float | None = None,
                             weight_decay: float | None = 0.0, network_weight_decay: float | None = None,
                             total_steps: int | None = None) -> dict[str, Any] | None:
    """Add the criterion's parameters (learnable matrix logits) to `optimizer` as their own param group.

    Call before building the LR scheduler (timm schedulers record each group's initial lr and scale it).

    Args:
        optimizer: Optimizer built from the model (e.g. ``timm.optim.create_optimizer_v2(model, ...)``).
        criterion: The loss; nothing is added when it has no trainable parameters.
        lr: Learning rate of the group; ``None`` = `hf_labelsmooth.optim.default_relation_lr` of the optimizer, its
            default lr (the network's) and `total_steps`: ``max(lr, 3 / total_steps)`` for Adam-like optimizers
            (``lr`` when `total_steps` is unknown), ``10 × lr`` for SGD-like.
        weight_decay: Weight decay of the group (default 0: matrices are kept out of weight decay); ``None`` takes
            the method's default (`relation_weight_decay`: LS++ follows the network's, LLS none).
        network_weight_decay: The network's weight decay; ``None`` = the largest of the optimizer's groups (timm
            puts the decayed weights and the exempt biases/norms in separate groups).
        total_steps: Optimizer steps of the whole run (epochs × updates per epoch), for the default lr.

    Returns:
        The group added, or None.
    """
    if not isinstance(criterion, RelationLoss):
        return None
    if network_weight_decay is None:
        network_weight_decay = max(g.get("weight_decay", 0.0) for g in optimizer.param_groups)
    options = RelationOptions(method=criterion.spec.name, relation_lr=lr, relation_weight_decay=weight_decay)
    groups = options.param_groups(criterion, optimizer, optimizer.defaults["lr"], network_weight_decay,
                                  total_steps=total_steps)
    for group in groups:
        optimizer.add_param_group(group)
    return optimizer.param_groups[-1] if groups else None
