"""Where the launcher installs a relation loss into timm for train.py, and why there (restored after the run).

train.py has no loss registry and no epoch-end hook; it reaches timm through module attributes that it looks up
when it runs (``from timm.task import ClassificationTask`` at import, ``utils.get_outdir(...)`` at call time). For
the run, the launcher replaces:

- ``timm.utils.init_distributed_device(args)``, train.py's first timm call after parsing: the launcher reads the
  parsed flags there and refuses those that contradict the relation loss (`check_script_args`), before any model or
  data is built.
- ``timm.data.create_loader`` / ``create_naflex_loader``: the training loader (``is_training=True``) gives the
  class names and marks the epochs. When an epoch's iteration starts, torch/numpy/random are reseeded from
  (``--seed``, epoch, rank), so that a resumed run repeats the uninterrupted one; once it is exhausted (every step
  of the epoch done, before validation and checkpointing) the task's epoch end runs on every rank (OLS swaps;
  per-process statistics are summed onto rank 0, which writes the checkpoints).
- ``timm.task.ClassificationTask``: a `LaunchedTask` (`RelationClassificationTask`) with the relation loss
  (`RelationOptions.build`) in place of train.py's criterion; LS++/LLS matrices sit inside the DDP-wrapped module,
  the loss state in ``task_state``.
- ``timm.optim.create_optimizer_v2``: timm's optimizer over the model, plus the matrix as its own param group
  (`add_relation_param_group`: ``--relation-lr``, by default 10 × ``--lr`` for SGD-like optimizers and
  max(``--lr``, 3 / total steps) for Adam-like ones, the total from the training loader's length, ``--epochs``,
  ``--cooldown-epochs`` and ``--grad-accum-steps``; the method's weight decay unless ``--relation-weight-decay``),
  whose steps the task counts: ``--relation-update-every N`` refreshes every N optimizer steps, as under the Trainer.
  The task follows that group's lr, so that the not-moved warning skips warmup epochs.
- ``timm.utils.get_outdir``: train.py's output folder, where `LaunchState.finish` writes the matrix, the cards and,
  with ``--push-to-hub``, uploads them with the model (`sharing`).
- ``timm.utils.update_summary`` (rank 0, each epoch): with ``--log-wandb``, the matrix's heatmap is logged to W&B in
  the same step as train.py's metrics.
- ``timm.loss.LOSS_TYPES`` / ``create_classification_loss`` (newer train.py: ``--loss`` chosen from those): the
  relation names are added and the factory returns a placeholder, replaced by the task (which knows the classes).
- ``timm.task.resume_task_checkpoint`` (``--resume``): the checkpoint's loss state must be its epoch's
  (`resume.verified_resume`), checked before timm restores anything.
- ``torch.distributed.destroy_process_group()``: a barrier first (train.py destroys the group with none).
"""
from __future__ import annotations

import functools
import logging
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import timm.data
import timm.loss
import timm.optim
import timm.task
import timm.task.classification
import timm.utils
import torch.distributed
from torch import nn

from ...options import RelationOptions
from .entry import check_device
from .launched_task import LaunchedTask, RelationPlaceholder
from .loss import is_relation_loss_type
from .options import LaunchError, LaunchOptions, relation_loss_types
from .param_group import add_relation_param_group
from .result import LaunchResult
from .resume import verified_resume
from .script_args import check_script_args, label_names
from .task import RelationTrainableModule

__all__ = ["LaunchState", "LaunchedTask", "RelationPlaceholder", "installed"]

_logger = logging.getLogger(__name__)


class LaunchState:
    """What the hooks learn during one run (train.py's flags, loader, task, output folder) and the hooks themselves."""

    def __init__(self, options: LaunchOptions) -> None:
        self.options, self.loss_type = options, options.loss_type
        self.spec: RelationOptions | None = None  # the run's options, once train.py's flags name its loss
        self.args: Any = None
        self.train_dataset: Any = None
        self.train_loader: Any = None
        self.task: LaunchedTask | None = None
        self.output_dir: str | None = None
        self.label_names: list[str] = []
        self.notes: list[str] = []  # for the log, once train.py has set it up
        self.optimizer: Any = None  # train.py's optimizer, with the matrix's param group
        self.prior: dict[str, Any] | None = None  # `provenance.prior_record` of a relation_prior run

    def read_args(self, original: Callable, args: Any, *rest: Any, **kwargs: Any) -> Any:
        self.args = args
        self.loss_type = check_script_args(self.options, args)
        check_device(args)  # train.py's default --device cuda on a machine without CUDA: one line, not a traceback
        self.spec = None if self.loss_type is None else self.options.relation_options(self.loss_type)
        for note in self.notes:
            _logger.info(f"hf-labelsmooth: {note}")
        return original(args, *rest, **kwargs)

    def create_loader(self, original: Callable, dataset: Any, *rest: Any, **kwargs: Any) -> Any:
        loader = original(dataset, *rest, **kwargs)
        if kwargs.get("is_training") and self.loss_type is not None:
            self.train_dataset, self.train_loader = dataset, loader
            _report_epochs(loader, self)
        return loader

    def classification_task(self, original: Callable, model: nn.Module, criterion: Any = None,
                            criterion_kwargs: dict | None = None, **kwargs: Any) -> Any:
        if self.loss_type is None:
            return original(model, criterion, criterion_kwargs=criterion_kwargs, **kwargs)
        if self.args is None or self.spec is None:
            raise LaunchError("Expected the script to call timm.utils.init_distributed_device(args) before building "
                              "its ClassificationTask, as timm's train.py does, but it did not.")
        self.task = LaunchedTask(model, self._build_loss(self.spec, getattr(model, "num_classes", None)),
                                 seed=getattr(self.args, "seed", 0), rank=getattr(self.args, "rank", 0),
                                 update_every=self.spec.update_every, **kwargs)
        return self.task

    def _build_loss(self, spec: RelationOptions, num_classes: int | None) -> nn.Module:
        if not num_classes:
            raise LaunchError(f"Expected a timm model with `num_classes` for {spec.method} but got {num_classes}.")
        names = self.label_names = label_names(self.train_dataset, num_classes)
        try:  # relation losses take class ids and Mixup/CutMix's soft targets alike; --smoothing 0 was checked
            loss, self.prior = spec.build_with_prior(num_classes, names)
        except ValueError as err:
            raise LaunchError(str(err)) from err
        _logger.info(f"hf-labelsmooth: {loss.spec.name} (alpha {loss.alpha}) in place of train.py's criterion")
        return loss

    def create_optimizer(self, original: Callable, model: Any, *rest: Any, **kwargs: Any) -> Any:
        if self.task is None:
            return original(model, *rest, **kwargs)
        if not isinstance(model, RelationTrainableModule):
            optimizer = original(model, *rest, **kwargs)
        else:
            optimizer = original(model.model, *rest, **kwargs)
            # The matrix is a param group of train.py's one optimizer (the Trainer gives it an optimizer of its
            # own): train.py steps, schedules and checkpoints only that optimizer, built from the trainable module.
            group = add_relation_param_group(optimizer, model.criterion, lr=self.options.relation_lr,
                                             weight_decay=self.options.relation_weight_decay,
                                             network_weight_decay=kwargs.get("weight_decay"),
                                             total_steps=self.total_steps())
            self.task.follow_lr(group)  # the not-moved check judges the lr this group applies
        self.task.count_optimizer_steps(optimizer)  # the update period counts its steps
        self.optimizer = optimizer
        return optimizer

    def update_summary(self, original: Callable, *args: Any, log_wandb: bool = False, **kwargs: Any) -> Any:
        """With ``--log-wandb``, the matrix's heatmap joins the epoch's metrics (one W&B step)."""
        if log_wandb and self.task is not None:
            from .sharing import log_wandb_heatmap

            log_wandb_heatmap(self.task.loss, self.label_names)
        return original(*args, log_wandb=log_wandb, **kwargs)

    def total_steps(self) -> int | None:
        """Optimizer steps of train.py's run, as its scheduler counts them; None before the training loader."""
        if self.train_loader is None or self.args is None:
            return None
        accum = max(int(getattr(self.args, "grad_accum_steps", 1) or 1), 1)
        epochs = int(getattr(self.args, "epochs", 0) or 0) + int(getattr(self.args, "cooldown_epochs", 0) or 0)
        return -(-len(self.train_loader) // accum) * epochs or None

    def get_outdir(self, original: Callable, *args: Any, **kwargs: Any) -> str:
        self.output_dir = original(*args, **kwargs)
        return self.output_dir

    def create_loss(self, original: Callable, loss_type: str | None = None, *rest: Any, **kwargs: Any) -> nn.Module:
        if is_relation_loss_type(loss_type):
            return RelationPlaceholder(str(loss_type))
        return original(loss_type, *rest, **kwargs)

    def finish(self) -> LaunchResult:
        """After train.py, on rank 0: the matrix the loss learned with its card, the root card and, with
        ``--push-to-hub``, the upload (`sharing.share_run`), in train.py's output folder."""
        task, args, written = self.task, self.args, None
        if task is not None and self.output_dir is not None:
            from .sharing import share_run

            written = share_run(task, args, Path(self.output_dir), self.label_names, self.options, self.optimizer,
                                self.prior)
        return LaunchResult(task=task, output_dir=self.output_dir, relations_dir=written,
                            world_size=getattr(args, "world_size", 1), rank=getattr(args, "rank", 0))


def _report_epochs(loader: Any, state: LaunchState) -> None:
    """Give `loader` (its class, so every attribute train.py reads stays its own) an iteration with epoch hooks."""
    base = type(loader)

    def __iter__(self: Any) -> Iterator[Any]:
        if state.task is not None:
            state.task.start_epoch()
        yield from base.__iter__(self)
        if state.task is not None:
            state.task.end_epoch()

    loader.__class__ = type(base.__name__, (base,), {"__iter__": __iter__, "__module__": base.__module__})


def _destroy_after_barrier(original: Callable, *args: Any, **kwargs: Any) -> Any:
    """train.py destroys the process group with no barrier: a rank that gets there first can abort at teardown
    while its peer still finishes a collective (seen under load with gloo). Wait for every rank first."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() and not args and not kwargs:
        torch.distributed.barrier()
    return original(*args, **kwargs)


@contextmanager
def installed(state: LaunchState) -> Iterator[LaunchState]:
    """Replace the timm attributes listed in the module docstring with `state`'s hooks; restore them on exit."""
    loss_types = tuple(timm.loss.LOSS_TYPES) + tuple(relation_loss_types())
    hooks: list[tuple[Any, str, Any]] = [
        (timm.utils, "init_distributed_device", state.read_args), (timm.utils, "get_outdir", state.get_outdir),
        (timm.utils, "update_summary", state.update_summary),
        (timm.data, "create_loader", state.create_loader), (timm.data, "create_naflex_loader", state.create_loader),
        (timm.task, "ClassificationTask", state.classification_task),
        (timm.optim, "create_optimizer_v2", state.create_optimizer),
        (timm.loss, "create_classification_loss", state.create_loss),
        (timm.task, "create_classification_loss", state.create_loss),
        (timm.task.classification, "create_classification_loss", state.create_loss),
        (timm.task, "resume_task_checkpoint", verified_resume),
        (torch.distributed, "destroy_process_group", _destroy_after_barrier),
    ]
    with ExitStack() as stack:
        for module, name, hook in hooks:
            if hasattr(module, name):
                original = getattr(module, name)
                stack.callback(setattr, module, name, original)
                setattr(module, name, functools.wraps(original)(functools.partial(hook, original)))
        for package in (timm.loss, timm.task):  # getattr/setattr: typed as plain modules
            stack.callback(setattr, package, "LOSS_TYPES", getattr(package, "LOSS_TYPES"))
            setattr(package, "LOSS_TYPES", loss_types)
        yield state
