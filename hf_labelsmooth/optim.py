"""Optimizer parameter groups for losses that own a class-relation matrix (LS++, LLS), their default learning rate,
and the check that the matrix actually learns."""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from .losses.base import RelationLoss

logger = logging.getLogger(__name__)

# Defaults of the matrix's learning rate, chosen by benchmarks/results_fidelity_{text,audio}.md (docs/methods.md):
ADAPTIVE_RELATION_LR = 5e-2  # Adam-like optimizers: a step moves each logit by about lr whatever the gradient scale
SGD_RELATION_LR_SCALE = 10.0  # SGD-like optimizers: the network's lr times this (the logits' gradients are ~1/K²)
STILL_THRESHOLD = 1e-2  # max |Δ logits| under which a matrix "has not moved" (R's entries changed by about 1 %)
_SGD_LIKE = ("sgd", "asgd", "lars")  # class-name prefixes of the optimizers whose step is lr × gradient


def is_sgd_like(optimizer: torch.optim.Optimizer | type) -> bool:
    """Whether an optimizer (instance or class) steps by lr × gradient (SGD, momentum, SGDP, LARS), not Adam-like."""
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    return issubclass(cls, torch.optim.SGD) or cls.__name__.lower().startswith(_SGD_LIKE)


def default_relation_lr(optimizer: torch.optim.Optimizer | type, lr: float) -> float:
    """Learning rate of a learnable matrix when none is given, from the network's optimizer family and lr.

    Adam-like optimizers (Adam, AdamW, Adafactor, Lion, RMSprop, LAMB, ...) move a parameter by about `lr` per step
    whatever its gradient, so a fine-tuning lr (1e-5 to 1e-4) leaves the zero-initialised logits near zero (uniform
    smoothing) for thousands of steps: they get `max(lr, ADAPTIVE_RELATION_LR)`. SGD-like optimizers get
    `lr × SGD_RELATION_LR_SCALE`: the gradient of each logit is small (a row sees only its class's share of a batch,
    and a softmax entry's gradient scales with the entry), so the papers' "same lr as the network" needs their
    hundreds of epochs. See docs/methods.md ("Learning rate of the matrix").

    Args:
        optimizer: The network's optimizer, or its class.
        lr: The network's learning rate.

    Returns:
        The matrix's learning rate.
    """
    return lr * SGD_RELATION_LR_SCALE if is_sgd_like(optimizer) else max(lr, ADAPTIVE_RELATION_LR)


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


class StillMatrixCheck:
    """Warn once (``hf_labelsmooth.optim`` logger) when a learnable matrix has not moved after a training epoch.

    A matrix whose logits stay within `threshold` of where training started is uniform smoothing under another name:
    the usual cause is a learning rate too small for it. Call `start` when training starts (after a resume) and
    `check` at each epoch end.

    Args:
        loss: The loss; losses without trainable parameters are never checked.
        flag: The option that sets the matrix's learning rate, named in the warning (``--relation_lr``).
        threshold: Largest max |Δ logits| that counts as not moved.
    """

    def __init__(self, loss: RelationLoss, flag: str = "relation_lr", threshold: float = STILL_THRESHOLD) -> None:
        self.loss, self.flag, self.threshold = loss, flag, threshold
        self.warned = False
        self._start: list[torch.Tensor] = []
        self.start()

    def _params(self) -> list[torch.Tensor]:
        return [p for p in self.loss.parameters() if p.requires_grad]

    def start(self) -> None:
        """Remember the current logits as the starting point."""
        self._start = [p.detach().clone() for p in self._params()]

    def moved(self) -> float:
        """Largest absolute change of any logit since `start` (0.0 without parameters)."""
        deltas = [float((p.detach() - p0.to(p.device)).abs().max()) for p, p0 in zip(self._params(), self._start)
                  if p.numel()]
        return max(deltas, default=0.0)

    def check(self, epoch: float, lr: float | None = None) -> bool:
        """Warn (once) when the matrix has not moved; returns whether it warned now."""
        if self.warned or not self._start:
            return False
        moved = self.moved()
        if moved >= self.threshold:
            return False
        self.warned = True
        at = f" (now {lr:g})" if lr is not None else ""
        logger.warning("The learnable relation matrix of %r has not moved after epoch %g: max |Δ logits| = %.2g < %g, "
                       "so it still smooths uniformly. Raise `%s`%s.", self.loss.spec.name, epoch, moved,
                       self.threshold, self.flag, at)
        return True
