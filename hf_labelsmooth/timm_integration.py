"""timm integration: `create_classification_loss` (timm's types plus ours) and a task training learnable matrices.

timm's ``train.py`` builds its criterion with ``timm.loss.create_classification_loss`` (a closed list of names) and
wraps only ``task.trainable_module`` in DDP, building the optimizer from the model alone. A loss that owns an
``nn.Parameter`` (LS++, LLS) is therefore neither optimised nor all-reduced unless it lives in the trainable module.
`RelationClassificationTask` puts such a loss in the trainable module (the pattern of timm's
``FeatureDistillationTrainableModule``) and keeps losses without parameters (OLS, fixed priors) outside DDP, so that
DDP's buffer broadcast never overwrites their per-process statistics (summed across processes at each OLS swap).

This module imports timm: import it explicitly (``from hf_labelsmooth.timm_integration import ...``).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from timm.loss import LOSS_TYPES as TIMM_LOSS_TYPES
from timm.loss import create_classification_loss as timm_create_classification_loss
from timm.task import ClassificationTask, TrainingTask
from timm.utils.model import unwrap_model

from .losses import RelationLoss, create_loss, is_loss, list_losses
from .optim import relation_param_groups

__all__ = [
    "TIMM_LOSS_TYPES", "RelationClassificationTask", "RelationTrainableModule", "add_relation_param_group",
    "create_classification_loss", "is_relation_loss_type", "list_classification_loss_types",
]


def is_relation_loss_type(loss_type: str | None) -> bool:
    """True for our losses (``"ls"``, ``"ols"``, ...); False for timm's own types (``"ce"``, ``"bce"``, ...)."""
    return loss_type is not None and loss_type not in TIMM_LOSS_TYPES and is_loss(loss_type)


def list_classification_loss_types() -> list[str]:
    """timm's loss types followed by the registered relation losses that timm does not define."""
    return list(TIMM_LOSS_TYPES) + [name for name in list_losses() if name not in TIMM_LOSS_TYPES]


def create_classification_loss(
    loss_type: str | None = None,
    num_classes: int | None = None,
    smoothing: float = 0.0,
    soft_targets: bool = False,
    alpha: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a classification criterion: timm's loss types unchanged, or a relation loss from `hf_labelsmooth`.

    Args:
        loss_type: A timm type (``timm.loss.LOSS_TYPES``: ce, bce, asl, ...), delegated to
            ``timm.loss.create_classification_loss`` with every other argument unchanged; or a relation loss
            (``"ls"``, ``"ols"``, ``"lspp"``, ``"lls"``, any registered name timm does not define).
        num_classes: Number of classes K; required for relation losses, ignored for timm's types.
        smoothing: timm's label smoothing (``--smoothing``). Relation losses take their smoothing from `alpha`
            and require ``smoothing=0``: with soft targets Mixup/CutMix have already applied it.
        soft_targets: Targets are dense Mixup/CutMix distributions [B, K] (relation losses accept both forms).
        alpha: Smoothing weight of a relation loss; ``None`` = the method's default (ls 0.1, ols 0.5, lspp/lls 0.1).
        **kwargs: timm's keyword arguments for its types; method options for ours (``update_every``, ``matrix``).

    Returns:
        The criterion module; a `RelationLoss` for relation types (ours accept class ids and soft targets alike).

    Raises:
        ValueError: Unknown type, missing `num_classes`, or ``smoothing != 0`` with a relation loss.
    """
    if not is_relation_loss_type(loss_type):
        if loss_type is not None and loss_type not in TIMM_LOSS_TYPES:
            raise ValueError(f"Expected a loss type in {list_classification_loss_types()} but got {loss_type!r}.")
        if alpha is not None:
            raise ValueError(f"Expected alpha=None for timm's loss type {loss_type!r} but got {alpha}: alpha "
                             "(--ls-alpha) sets relation losses; use smoothing (--smoothing) with timm's types.")
        return timm_create_classification_loss(loss_type, smoothing=smoothing, soft_targets=soft_targets, **kwargs)
    if num_classes is None:
        raise ValueError(f"Expected `num_classes` (the model's output size) for loss {loss_type!r} but got None.")
    if smoothing:
        where = "Mixup/CutMix already smooth the soft targets, so it would smooth twice" if soft_targets else \
            "relation losses take their smoothing weight from `alpha` (--ls-alpha)"
        raise ValueError(f"Expected smoothing=0 with loss {loss_type!r} but got {smoothing}: {where}. "
                         "Pass smoothing=0 (--smoothing 0) and set `alpha` instead.")
    return create_loss(loss_type, num_classes=num_classes, alpha=alpha, **kwargs)


def _has_parameters(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


class RelationTrainableModule(nn.Module):
    """Model + learnable loss in one module, so that DDP all-reduces the matrix gradients with the model's.

    Args:
        model: The timm model.
        criterion: A loss owning parameters (LS++, LLS). Its buffers (per-process statistics such as sparse
            candidate scores) are excluded from DDP's buffer broadcast, which would otherwise overwrite every
            rank's with rank 0's before each forward; the loss synchronises them itself.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        buffers = [f"criterion.{name}" for name, _ in criterion.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, buffers)

    def no_weight_decay(self) -> set[str]:
        model = unwrap_model(self.model)
        names = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
        return {"model." + name for name in names}

    def forward(self, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        output = self.model(input)
        return output, self.criterion(output, target)


class RelationClassificationTask(ClassificationTask):
    """timm ``ClassificationTask`` for relation losses: learnable matrices trained, synced, checkpointed.

    A criterion with parameters lives in the trainable module (DDP-wrapped, EMA'd with the model); one without
    stays outside DDP. The eval model (and the checkpoint ``state_dict``) is the bare timm model; the loss state
    (matrix logits, OLS buffers) goes to ``task_state`` through `get_task_state`, which timm's ``CheckpointSaver``
    and ``resume_task_checkpoint`` save and restore.

    Args:
        model: The timm model.
        criterion: The loss (a `RelationLoss` or any timm criterion).
        device: Device of the task.
        verbose: Log the criterion.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module, device: torch.device | None = None,
                 verbose: bool = True) -> None:
        TrainingTask.__init__(self, device=device, verbose=verbose)
        criterion = criterion.to(self.device)
        if _has_parameters(criterion):
            self.trainable_module = RelationTrainableModule(model, criterion)
            self.criterion = None
        else:
            self.trainable_module, self.criterion = model, criterion

    @property
    def loss(self) -> nn.Module:
        """The criterion, wherever it lives (inside the trainable module or beside it)."""
        if self.criterion is not None:
            return self.criterion
        return unwrap_model(self.trainable_module).criterion

    def forward(self, input: Tensor, target: Tensor) -> dict[str, Tensor]:
        if self.criterion is not None:
            output = self.trainable_module(input)
            return {"loss": self.criterion(output, target), "output": output}
        output, loss = self.trainable_module(input, target)
        return {"loss": loss, "output": output}

    def get_eval_model(self, module: nn.Module | None = None, ema: bool = False) -> nn.Module | None:
        current = resolved = TrainingTask.get_eval_model(self, module=module, ema=ema)
        while current is not None:
            if isinstance(current, RelationTrainableModule):
                return current.model
            current = getattr(current, "module", None)
        return resolved

    def get_task_state(self, module: nn.Module | None = None, ema: bool = False) -> dict[str, Any]:
        return {} if ema else {"criterion": self.loss.state_dict()}

    def load_task_state(self, state: dict[str, Any] | None, strict: bool = True, module: nn.Module | None = None,
                        ema: bool = False) -> None:
        if ema or not state:
            return
        if "criterion" not in state and strict:
            raise KeyError(f"Expected a 'criterion' entry in the checkpoint's task_state but got {sorted(state)}.")
        self.loss.load_state_dict(state["criterion"], strict=strict)
        if isinstance(self.loss, RelationLoss):
            self.loss.keep_states_on_rank_zero()  # the checkpoint holds the global sum: keep it once

    def get_clip_parameters(self, exclude_head: bool = False) -> Iterable[Tensor]:
        model = self.get_eval_model()
        params = list(unwrap_model(model).parameters())
        return params[:-2] if exclude_head else params

    def end_epoch(self) -> None:
        """Epoch end, on every rank (collective): the loss's hook (OLS swaps), then `consolidate_loss_state`."""
        if hasattr(self.loss, "end_epoch"):
            self.loss.end_epoch()
        self.consolidate_loss_state()

    def consolidate_loss_state(self) -> None:
        """Sum the loss's per-process statistics onto rank 0, which writes checkpoints (collective)."""
        if isinstance(self.loss, RelationLoss):
            self.loss.consolidate_states()


def add_relation_param_group(optimizer: torch.optim.Optimizer, criterion: nn.Module, lr: float | None = None,
                             weight_decay: float | None = 0.0,
                             network_weight_decay: float | None = None) -> dict[str, Any] | None:
    """Add the criterion's parameters (learnable matrix logits) to `optimizer` as their own param group.

    Call before building the LR scheduler (timm schedulers record each group's initial lr and scale it).

    Args:
        optimizer: Optimizer built from the model (e.g. ``timm.optim.create_optimizer_v2(model, ...)``).
        criterion: The loss; nothing is added when it has no trainable parameters.
        lr: Learning rate of the group; ``None`` = the optimizer's default lr (the network's).
        weight_decay: Weight decay of the group (default 0: matrices are kept out of weight decay); ``None`` takes
            the method's default (`relation_weight_decay`: LS++ follows the network's, LLS none).
        network_weight_decay: The network's weight decay; ``None`` = the largest of the optimizer's groups (timm
            puts the decayed weights and the exempt biases/norms in separate groups).

    Returns:
        The group added, or None.
    """
    if not isinstance(criterion, RelationLoss):
        return None
    groups = relation_param_groups(criterion, lr=optimizer.defaults["lr"] if lr is None else lr,
                                   weight_decay=weight_decay,
                                   network_weight_decay=network_weight_decay if network_weight_decay is not None
                                   else max(g.get("weight_decay", 0.0) for g in optimizer.param_groups))
    for group in groups:
        optimizer.add_param_group(group)
    return optimizer.param_groups[-1] if groups else None
