"""timm task for relation losses: a learnable matrix inside the DDP-wrapped module, loss state in checkpoints.

timm's ``train.py`` wraps only ``task.trainable_module`` in DDP and builds the optimizer from it. A loss that owns an
``nn.Parameter`` (LS++, LLS) is therefore neither optimised nor all-reduced unless it lives in the trainable module.
`RelationClassificationTask` puts such a loss in the trainable module (the pattern of timm's
``FeatureDistillationTrainableModule``) and keeps losses without parameters (OLS, fixed priors) outside DDP, so that
DDP's buffer broadcast never overwrites their per-process statistics (reduced across processes by the loss at each
OLS swap, `RelationLoss.sync_states`).
"""
from __future__ import annotations

from typing import Any, Iterable, cast

import torch
from timm.task import ClassificationTask, TrainingTask
from timm.utils.model import unwrap_model
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ...losses import RelationLoss
from ...optim import MatrixCheck
from ...options import UpdatePeriod

__all__ = ["RelationClassificationTask", "RelationTrainableModule"]


def _has_parameters(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _is_rank_zero() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
        or torch.distributed.get_rank() == 0


class RelationTrainableModule(nn.Module):
    """Model + learnable loss in one module, so that DDP all-reduces the matrix gradients with the model's.

    Args:
        model: The timm model.
        criterion: A loss owning parameters (LS++, LLS). Its buffers are excluded from DDP's buffer broadcast,
            which would otherwise overwrite every rank's with rank 0's before each forward: the per-process
            statistics (sparse candidate tables) are states declared with `RelationLoss.add_state`, which the loss
            merges across processes (`sync_states`) before each slot refresh, and the slots it then computes are the
            same on every rank.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        ignore_loss_buffers(self)

    def no_weight_decay(self) -> set[str]:
        model = unwrap_model(self.model)
        names = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
        return {"model." + name for name in names}

    def forward(self, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        output = self.model(input)
        return output, self.criterion(output, target)


def ignore_loss_buffers(module: nn.Module) -> None:
    """Keep the criterion's buffers of a (possibly compiled) `RelationTrainableModule` out of DDP's broadcast.

    DDP matches names from the module it wraps: a compiled module prefixes them with ``_orig_mod.``.
    """
    names = [name for name, _ in module.named_buffers() if name.startswith(("criterion.", "_orig_mod.criterion."))]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)


class RelationClassificationTask(ClassificationTask):
    """timm ``ClassificationTask`` for relation losses: learnable matrices trained, synced, checkpointed.

    A criterion with parameters lives in the trainable module (DDP-wrapped, EMA'd with the model); one without
    stays outside DDP. The eval model (and the checkpoint ``state_dict``) is the bare timm model; the loss state
    (matrix logits, OLS buffers) goes to ``task_state`` through `get_task_state`, which timm's ``CheckpointSaver``
    and ``resume_task_checkpoint`` save and restore. `end_epoch` warns once (rank 0) when a learnable matrix has not
    moved since training started or has collapsed (`MatrixCheck`, naming ``--relation-lr``; ``--ls-alpha`` at 0).
    After `follow_lr` with the matrix's param group, an epoch whose lr stayed tiny by schedule (warmup) is not
    judged.

    Args:
        model: The timm model.
        criterion: The loss (a `RelationLoss` or any timm criterion).
        device: Device of the task.
        dtype: Dtype of the task's tensors (timm's ``--model-dtype``; default: torch's default dtype).
        verbose: Log the criterion.
        update_every: Refresh the relations every N optimizer steps of the optimizer given to
            `count_optimizer_steps` instead of at each `end_epoch` (`hf_labelsmooth.options.UpdatePeriod`); the step
            count is checkpointed in ``task_state``.
    """

    # None when the criterion lives in the trainable module; timm infers `Callable` from its loss factory
    criterion: nn.Module | None  # type: ignore[assignment]

    def __init__(self, model: nn.Module, criterion: nn.Module, device: torch.device | None = None,
                 dtype: torch.dtype | None = None, verbose: bool = True, update_every: int | None = None) -> None:
        TrainingTask.__init__(self, device=device, dtype=dtype, verbose=verbose)
        criterion = criterion.to(self.device)
        self.compiled_criterion: nn.Module | None = None
        if _has_parameters(criterion):
            self.trainable_module = RelationTrainableModule(model, criterion)
            self.criterion = None
        else:
            self.trainable_module, self.criterion = model, criterion
        self.still: MatrixCheck | None = None
        self.period: UpdatePeriod | None = None
        if isinstance(criterion, RelationLoss):
            self.still = MatrixCheck(criterion, flag="--relation-lr", alpha_flag="--ls-alpha")
            self.period = UpdatePeriod(criterion, update_every)
        self.optimizer_steps = 0
        self._epochs_run = 0

    def count_optimizer_steps(self, optimizer: torch.optim.Optimizer) -> None:
        """Count `optimizer`'s steps, and refresh the relations at the end of each `update_every` period.

        A post-step hook rather than the forward batches the loss sees, so that ``--grad-accum-steps`` counts as the
        Trainer counts (optimizer steps). A step that an fp16 loss scaler skips (inf gradients) is not counted.
        """
        def after_step(*_: Any) -> None:
            self.optimizer_steps += 1
            if self.period is not None:
                self.period.after_step(self.optimizer_steps)

        optimizer.register_step_post_hook(after_step)

    @property
    def loss(self) -> nn.Module:
        """The criterion, wherever it lives (inside the trainable module or beside it)."""
        if self.criterion is not None:
            return self.criterion
        return unwrap_model(self.trainable_module).criterion

    def prepare_distributed(self, device_ids: list | None = None, **ddp_kwargs: Any) -> "RelationClassificationTask":
        """Wrap the trainable module in DDP; CPU device ids are dropped (DDP refuses them, gloo needs none)."""
        if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
            device_ids = None
        ClassificationTask.prepare_distributed(self, device_ids=device_ids, **ddp_kwargs)
        return self

    def forward(self, input: Tensor, target: Tensor) -> dict[str, Tensor]:
        if self.criterion is not None:
            output = self.trainable_module(input)
            criterion = self.criterion if self.compiled_criterion is None else self.compiled_criterion
            return {"loss": criterion(output, target), "output": output}
        output, loss = self.trainable_module(input, target)
        return {"loss": loss, "output": output}

    def compile(  # type: ignore[override]  # timm's ClassificationTask.compile already differs from nn.Module's
            self, backend: str = "inductor", mode: str | None = None, **compile_kwargs: Any) -> nn.Module:
        """``torch.compile`` the trainable module and a loss kept beside it, before DDP (timm ``--torchcompile``).

        A learnable loss is compiled in one graph with the model (with ``check_inputs=False``, no graph break).
        The loss module itself stays uncompiled for `get_task_state` (no ``_orig_mod.`` keys); validation runs
        the compiled timm model alone (timm would validate with the compiled model + loss, which needs targets).
        """
        # casts: torch.compile of a module returns an OptimizedModule, its stubs say a plain callable
        module = self.trainable_module
        self.trainable_module = cast(nn.Module, torch.compile(module, backend=backend, mode=mode, **compile_kwargs))
        if isinstance(module, RelationTrainableModule):
            ignore_loss_buffers(self.trainable_module)
            self.eval_model = cast(nn.Module, torch.compile(module.model, backend=backend, mode=mode, **compile_kwargs))
        else:
            self.eval_model = self.trainable_module
        if self.criterion is not None:
            self.compiled_criterion = cast(nn.Module, torch.compile(self.criterion, backend=backend, mode=mode,
                                                                    **compile_kwargs))
        return self.eval_model

    def get_eval_model(self, module: nn.Module | None = None, ema: bool = False) -> nn.Module | None:
        current = resolved = TrainingTask.get_eval_model(self, module=module, ema=ema)
        while current is not None:
            if isinstance(current, RelationTrainableModule):
                return current.model
            current = getattr(current, "module", None)
        return resolved

    def get_task_state(self, module: nn.Module | None = None, ema: bool = False) -> dict[str, Any]:
        if ema:
            return {}
        steps = {"optimizer_steps": self.optimizer_steps} if self.period is not None and self.period.every else {}
        return {"criterion": self.loss.state_dict(), **steps}

    def load_task_state(self, state: dict[str, Any] | None, strict: bool = True, module: nn.Module | None = None,
                        ema: bool = False) -> None:
        if ema or not state:
            return
        if "criterion" not in state and strict:
            raise KeyError(f"Expected a 'criterion' entry in the checkpoint's task_state but got {sorted(state)}.")
        self.loss.load_state_dict(state["criterion"], strict=strict)
        self.optimizer_steps = int(state.get("optimizer_steps", 0))
        if isinstance(self.loss, RelationLoss):
            self.loss.keep_states_on_rank_zero()  # the checkpoint holds the global sum: keep it once
        if self.still is not None:
            self.still.start()  # a resumed matrix is judged from where it was restored

    def get_clip_parameters(self, exclude_head: bool = False) -> Iterable[Tensor]:
        model = self.get_eval_model()
        params = list(unwrap_model(model).parameters())
        return params[:-2] if exclude_head else params

    def end_epoch(self) -> None:
        """Epoch end, on every rank (collective): the loss's refresh (OLS swaps; unless `update_every` is set), then
        `consolidate_loss_state`; rank 0 warns once when a learnable matrix has not moved."""
        end_epoch = getattr(self.loss, "end_epoch", None)  # any timm criterion may sit here
        if isinstance(self.loss, RelationLoss):  # deferred checks, before the epoch's checkpoint (state_dict too)
            self.loss.raise_deferred(f"the end of epoch {self._epochs_run}")
        if self.period is not None:
            self.period.at_epoch_end()  # unless the period counts optimizer steps
        elif end_epoch is not None:
            end_epoch()
        self.consolidate_loss_state()
        self._epochs_run += 1
        if self.still is not None and _is_rank_zero():
            self.still.check(self._epochs_run)

    def follow_lr(self, group: dict[str, Any] | None) -> None:
        """The matrix's param group: the not-moved check judges the lr it applies (see `observe_lr`)."""
        if self.still is not None:
            self.still.follow(group)

    def observe_lr(self) -> None:
        """Record the matrix's applied lr (at epoch starts; `end_epoch` records it too)."""
        if self.still is not None:
            self.still.observe()

    def consolidate_loss_state(self) -> None:
        """Sum the loss's per-process statistics onto rank 0, which writes checkpoints (collective)."""
        if isinstance(self.loss, RelationLoss):
            self.loss.consolidate_states()
