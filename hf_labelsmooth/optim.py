"""Optimizer parameter groups for losses that own a class-relation matrix (LS++, LLS), their default learning rate,
and (re-exported from `matrix_check`) the check that the matrix learns without collapsing."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .losses.base import RelationLoss
from .matrix_check import COLLAPSE_THRESHOLD, STILL_THRESHOLD, WARMUP_FRACTION, MatrixCheck, StillMatrixCheck

__all__ = ["COLLAPSE_THRESHOLD", "RELATION_TRAVEL", "SGD_RELATION_LR_SCALE", "STILL_THRESHOLD", "WARMUP_FRACTION",
           "MatrixCheck", "StillMatrixCheck", "default_relation_lr", "describe_default_relation_lr", "is_sgd_like",
           "module_param_groups", "relation_param_groups"]

# Defaults of the matrix's learning rate, chosen by benchmarks/results_fidelity_*.md (docs/methods.md):
RELATION_TRAVEL = 3.0  # Adam-like: relation_lr × total steps, the logit travel a matrix is given
SGD_RELATION_LR_SCALE = 10.0  # SGD-like optimizers: the network's lr times this (the logits' gradients are ~1/K²)
_SGD_LIKE = ("sgd", "asgd", "lars")  # class-name prefixes of the optimizers whose step is lr × gradient


def is_sgd_like(optimizer: torch.optim.Optimizer | type) -> bool:
    """Whether an optimizer (instance or class) steps by lr × gradient (SGD, momentum, SGDP, LARS), not Adam-like."""
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    return issubclass(cls, torch.optim.SGD) or cls.__name__.lower().startswith(_SGD_LIKE)


def default_relation_lr(optimizer: torch.optim.Optimizer | type, lr: float, total_steps: int | None = None) -> float:
    """Learning rate of a learnable matrix when none is given, from the network's optimizer family, lr and the
    run's length.

    Adam-like optimizers (Adam, AdamW, Adafactor, Lion, RMSprop, LAMB, ...) move a parameter by about `lr` per step
    whatever its gradient, so over a run a matrix logit travels up to ``relation_lr × total_steps``. The matrix needs
    a travel of a few units to express relations, and the loss pulls each row towards one class without limit
    (from scratch, every row collapses with a travel of ~40), so the default is
    ``max(lr, RELATION_TRAVEL / total_steps)``: the network's lr when that already travels far enough (the papers'
    long from-scratch runs), a larger one in a short fine-tune, whether or not the weights are pretrained. Without
    `total_steps` the network's lr (uniform smoothing at worst; the not-moved warning then names the fix).
    SGD-like optimizers get ``lr × SGD_RELATION_LR_SCALE``: their step scales with the gradient, which is small for
    each logit (a row sees only its class's share of a batch, a softmax entry's gradient scales with the entry).
    See docs/methods.md ("Learning rate of the matrix").

    Args:
        optimizer: The network's optimizer, or its class.
        lr: The network's learning rate.
        total_steps: Optimizer steps of the whole run (``None``: unknown).

    Returns:
        The matrix's learning rate.
    """
    if is_sgd_like(optimizer):
        return lr * SGD_RELATION_LR_SCALE
    if not total_steps or total_steps < 0:
        return lr
    return max(lr, RELATION_TRAVEL / total_steps)


def describe_default_relation_lr(lr: str = "lr") -> str:
    """`default_relation_lr`'s rule in words, for help texts, with the network's lr named `lr` (e.g. ``--lr``)."""
    return (f"max({lr}, {RELATION_TRAVEL:g} / total optimizer steps) with an Adam-like optimizer (about "
            f"{RELATION_TRAVEL:g} units of logit travel, from scratch or pretrained), {SGD_RELATION_LR_SCALE:g} x {lr} "
            "with an SGD-like one")


def relation_param_groups(loss: RelationLoss, lr: float, weight_decay: float | None = None,
                          network_weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Parameter groups that train a loss's own matrix; empty for losses without parameters.

    Args:
        loss: The loss module.
        lr: Learning rate of the matrix (`default_relation_lr` gives the default for a network's optimizer).
        weight_decay: Weight decay of the matrix; ``None`` takes the method's default
            (`loss.spec.relation_weight_decay`, where ``None`` means `network_weight_decay`).
        network_weight_decay: The network's weight decay, used when the method follows it (LS++).

    Returns:
        A list with at most one param group, to append to the network's groups.
    """
    params = [p for p in loss.parameters() if p.requires_grad]
    if not params:
        return []
    if weight_decay is None:
        decay = loss.spec.relation_weight_decay
        weight_decay = network_weight_decay if decay is None else decay
    return [{"params": params, "lr": lr, "weight_decay": weight_decay, "name": "relation_matrix"}]


def module_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups for a network: decayed weights, and biases/norms (1-d tensors) without decay."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
