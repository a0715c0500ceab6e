"""`RelationOptimizer`: the optimizer, learning-rate schedule and gradients of a loss's own parameters under the
Trainer.

A learnable matrix (LS++, LLS) lives outside the wrapped model. Under FSDP the model's optimizer and FSDP's
optimizer checkpoints may hold only the wrapped model's parameters, so the matrix has an optimizer of its own: the
Trainer's optimizer class and arguments, `relation_lr` (default `hf_labelsmooth.optim.default_relation_lr` of that
class: a fine-tuning `learning_rate` would leave the matrix uniform) and `relation_weight_decay`, the model's
schedule. It averages its gradients across processes once per step, then steps just before the model's optimizer
(`RelationLossCallback`). Its state is checkpointed by `checkpoint.LossCheckpoint`.
"""
from __future__ import annotations

from typing import Any, cast

import torch
import torch.distributed as dist
from transformers import TrainingArguments, get_scheduler

from ...losses.base import RelationLoss
from ...losses.states import world_size
from ...optim import default_relation_lr
from ...options import RelationOptions


def average_gradients(loss: RelationLoss) -> None:
    """All-reduce (mean) the gradients of the loss's own parameters so every process steps identically."""
    world = world_size()
    if world == 1:
        return
    for param in loss.parameters():
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(world)


def zero_gradients(loss: RelationLoss) -> None:
    """Drop the gradients of the loss's parameters (the Trainer only zeroes the model's)."""
    for param in loss.parameters():
        param.grad = None


class RelationOptimizer:
    """An optimizer over a loss's parameters, with the model's learning-rate schedule.

    Args:
        optimizer: The optimizer (see `for_loss`).
        loss: The loss whose parameters it steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, loss: RelationLoss) -> None:
        self.optimizer, self.loss = optimizer, loss
        self.scheduler: Any = None

    @classmethod
    def for_loss(cls, loss: RelationLoss, options: RelationOptions, args: TrainingArguments, optimizer_cls: type,
                 optimizer_kwargs: dict[str, Any]) -> "RelationOptimizer | None":
        """The Trainer's optimizer class over `loss`'s parameters (`RelationOptions.param_groups`: `relation_lr`,
        else the default of that class and `learning_rate`); None for losses without parameters."""
        # An optimizer of its own rather than a param group of the model's (as under timm): with FSDP the model's
        # optimizer and its checkpoints may hold only the wrapped model's parameters.
        groups = options.param_groups(loss, optimizer_cls, args.learning_rate, args.weight_decay)
        return cls(optimizer_cls(groups, **optimizer_kwargs), loss) if groups else None

    @property
    def lr(self) -> float:
        """The matrix's learning rate before scheduling."""
        group = self.optimizer.param_groups[0]
        return float(group.get("initial_lr", group["lr"]))

    def schedule(self, args: TrainingArguments, num_training_steps: int, model_scheduler: Any,
                 relation_lr: float | None = None) -> None:
        """The model's schedule (`lr_scheduler_type`, warmup); a constant rate when the model's is ReduceLROnPlateau
        (it steps on evaluation metrics). Without a `relation_lr` (given here, or the arguments' field), the default
        for `num_training_steps` first."""
        if relation_lr is None and getattr(args, "relation_lr", None) is None:
            lr = default_relation_lr(type(self.optimizer), args.learning_rate, total_steps=num_training_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] = lr
        if isinstance(model_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler = None
            return
        self.scheduler = get_scheduler(args.lr_scheduler_type, optimizer=self.optimizer,
                                       num_warmup_steps=args.get_warmup_steps(num_training_steps),
                                       num_training_steps=num_training_steps,
                                       # a JSON string is parsed into a dict by TrainingArguments.__post_init__
                                       scheduler_specific_kwargs=cast("dict | None", args.lr_scheduler_kwargs))

    def step(self, scaler: Any = None) -> None:
        """Average the gradients across processes (they live outside the DDP- or FSDP-wrapped model, so neither
        reduces them), then one step; with a loss scaler (fp16) through it: unscaled, skipped on inf, before the
        model's step whose `scaler.update()` then accounts for both."""
        average_gradients(self.loss)
        if scaler is not None:
            scaler.step(self.optimizer)
        else:
            self.optimizer.step()

    def step_schedule(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()
