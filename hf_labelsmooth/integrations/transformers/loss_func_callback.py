"""`LossFunctionCallback`: the Trainer-loop side of `RelationLossFunction` (loss, matrix optimizer, checkpoints).

What `LabelSmoothingTrainer` does in its overrides, done here from `Trainer` events, with the same parts:

- `on_init_end` (the Trainer is built): the loss, from `RelationOptions` and the model's config (`id2label`);
- `on_train_begin`: the matrix's optimizer (`RelationOptimizer`: `Trainer.get_optimizer_cls_and_kwargs` of the
  arguments, `relation_lr`, the model's schedule) and, when the run resumes, the loss state of the checkpoint;
- `on_pre_optimizer_step` / `on_step_end` / `on_epoch_end`: `RelationLossCallback` (gradients averaged across
  processes, update periods, OLS swaps);
- `on_save`: `LossCheckpoint.save` and ``relation_matrix/`` into the checkpoint folder;
- `on_train_end`: the best checkpoint's loss state (`load_best_model_at_end`), then ``relation_matrix/`` into
  `output_dir`.

Limits (a callback gets no hook there): `Trainer.save_model(dir)` calls no callback (`RelationLossFunction.
save_relations(dir)` writes the matrix there); checkpoint pushes (``hub_strategy``) run before `on_save`, so they carry
no ``relation_matrix/`` (the end-of-training `push_to_hub` does); a resume is found as ``checkpoint-{global_step}`` in
`output_dir` (the Trainer does not tell callbacks which folder it resumed from); an optimizer given to the Trainer
(`optimizers=` / `optimizer_cls_and_kwargs=`) is not seen: the matrix's optimizer follows `args.optim`; the model card
gets no relation section; the relation statistics are added to `state.log_history`, not to the logs reporters see.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, cast

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ...losses.base import RelationLoss
from ...metrics.functional import relation_stats
from ...options import RelationOptions
from ...relations import ARTIFACT_DIR, needs_topk_artifact, save_relations
from .callbacks import RelationLossCallback
from .checkpoint import LossCheckpoint
from .data_checks import check_problem_type
from .model_card import describe_source, remove_stale_relations, round_epochs, trainer_training_record
from .relation_optimizer import RelationOptimizer
from .training_args import config_label_names

PREFIX = "checkpoint"  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR


class LossFunctionCallback(TrainerCallback):
    """Callback of a `RelationLossFunction` (see the module docstring for what it does at each event).

    Args:
        options: The run's loss options.
        num_labels: The model's number of outputs.
        label_names: Class names in output order; None: the model config's.
    """

    def __init__(self, options: RelationOptions, num_labels: int, label_names: list[str] | None) -> None:
        self.options, self.num_labels, self.label_names = options, num_labels, label_names
        self._loss: RelationLoss | None = None
        self.loss_fn: Callable[..., Tensor] | None = None
        self.model: nn.Module | None = None
        self.args: TrainingArguments | None = None
        self.relation_optimizer: RelationOptimizer | None = None
        self.trainer_optimizer: Any = None
        self.driver: RelationLossCallback | None = None
        self.checkpoint: LossCheckpoint | None = None
        self.prior: dict[str, Any] | None = None  # `provenance.prior_record` of a relation_prior's matrix

    @property
    def relation_loss(self) -> RelationLoss:
        if self._loss is None:
            raise RuntimeError("Expected the loss function's callback among the Trainer's callbacks but got a loss "
                               "that was never set up. Pass Trainer(..., compute_loss_func=f, callbacks=[f.callback]).")
        return self._loss

    def model_is_training(self) -> bool:
        return self.model is not None and self.model.training

    def per_sample(self, logits: Tensor, labels: Tensor, training: bool) -> Tensor:
        """Per-sample loss; statistics (OLS) update only in training."""
        loss = self.relation_loss
        loss.train(training)
        return cast(Callable[..., Tensor], self.loss_fn)(logits, labels)

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        model = kwargs["model"]
        config = model.config
        check_problem_type(config)
        if int(config.num_labels) != self.num_labels:
            raise ValueError(f"Expected a model with num_labels={self.num_labels} (compute_loss_func's) but got "
                             f"config.num_labels={config.num_labels}. Pass the model's num_labels.")
        if args.label_smoothing_factor:
            raise ValueError(f"Expected `label_smoothing_factor` = 0 with hf_labelsmooth's compute_loss_func but got "
                             f"{args.label_smoothing_factor}: the Trainer ignores it when a compute_loss_func is set. "
                             "Use method 'ls' with `alpha` instead.")
        self.model, self.args = model, args
        names = self.label_names or config_label_names(config)
        loss, self.prior = self.options.build_with_prior(self.num_labels, names, reduction="none")
        loss = loss.to(args.device)
        self._loss, self.label_names, self.loss_fn = loss, names, loss
        if args.torch_compile:  # as LabelSmoothingTrainer: the loss compiled like the model
            self.loss_fn = cast(Callable[..., Tensor], torch.compile(
                loss, backend=args.torch_compile_backend, mode=args.torch_compile_mode))  # type: ignore[arg-type]
        self.checkpoint = LossCheckpoint(loss, lambda: self.relation_optimizer)
        self.driver = RelationLossCallback(loss, self.options.update_every, optimizer_step=self._optimizer_step,
                                           scheduler_step=self._scheduler_step, relation_group=self._relation_group)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        loss, driver = self.relation_loss, cast(RelationLossCallback, self.driver)
        self.model, self.trainer_optimizer = kwargs.get("model", self.model), kwargs.get("optimizer")
        if self.relation_optimizer is None:
            cls, cls_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, self.model)
            self.relation_optimizer = RelationOptimizer.for_loss(loss, self.options, args, cls, cls_kwargs)
        if self.relation_optimizer is not None:
            self.relation_optimizer.schedule(args, state.max_steps, kwargs.get("lr_scheduler"),
                                             relation_lr=self.options.relation_lr)
        if state.global_step > 0:  # a resumed run
            folder = resumed_checkpoint(args, state)
            cast(LossCheckpoint, self.checkpoint).check_resumable(folder)
            cast(LossCheckpoint, self.checkpoint).load(str(folder))
        driver.on_train_begin(args, state, control, **kwargs)

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                              **kwargs: Any):
        cast(RelationLossCallback, self.driver).on_pre_optimizer_step(args, state, control, **kwargs)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        cast(RelationLossCallback, self.driver).on_step_end(args, state, control, **kwargs)
        if control.should_log or control.should_save or control.should_evaluate:  # set by DefaultFlowCallback, before
            self.relation_loss.raise_deferred(f"step {state.global_step}")  # the Trainer logs or writes a checkpoint

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.relation_loss.raise_deferred(f"the end of epoch {state.epoch}")  # the epoch's last defect, if no log came
        cast(RelationLossCallback, self.driver).on_epoch_end(args, state, control, **kwargs)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        folder = Path(cast(str, args.output_dir)) / f"{PREFIX}-{state.global_step}"
        if args.should_save and not folder.is_dir():  # hyperparameter search saves into output_dir/run-<trial>/
            raise ValueError(f"Expected the Trainer's checkpoint at {folder} but got no such folder: with "
                             "compute_loss_func the loss state is saved beside output_dir/checkpoint-<step> "
                             "(hyperparameter_search is not supported). Use LabelSmoothingTrainer.")
        if not args.save_only_model:  # as the Trainer's optimizer state: none with save_only_model
            cast(LossCheckpoint, self.checkpoint).save(folder, args.should_save, state.global_step)  # collective
        self.save_relations(str(folder), epochs=state.epoch)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any):
        loss = self.relation_loss
        if logs is None or not ("loss" in logs or "train_loss" in logs) or not state.log_history:
            return
        if loss.spec.learns_relations and not needs_topk_artifact(loss):  # large sparse K: no matrix
            state.log_history[-1].update(relation_stats(loss.relation_matrix()))

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        if args.load_best_model_at_end and state.best_model_checkpoint is not None:
            cast(LossCheckpoint, self.checkpoint).load_best(state.best_model_checkpoint)
        self.save_relations(None, epochs=state.epoch)

    def save_relations(self, directory: str | None, epochs: float | None = None) -> None:
        """``<directory>/relation_matrix/`` on the main process, for methods that learn relations (for the others, a
        ``relation_matrix/`` left there by an earlier run is removed, as `LabelSmoothingTrainer.save_relations`)."""
        args, loss = self.args, self.relation_loss
        if args is None or not args.should_save:
            return
        root = directory or cast(str, args.output_dir)
        if not loss.spec.learns_relations:
            remove_stale_relations(Path(root) / ARTIFACT_DIR, loss.name)
            return
        source = describe_source(getattr(getattr(self.model, "config", None), "_name_or_path", None))
        save_relations(loss, cast(list, self.label_names), Path(root) / ARTIFACT_DIR, repo_id=args.hub_model_id,
                       source_model=source, epochs=round_epochs(epochs), training=trainer_training_record(self))

    def _optimizer_step(self) -> None:
        if self.relation_optimizer is not None:  # fp16: the model's loss scaler, from the Trainer's optimizer
            self.relation_optimizer.step(getattr(self.trainer_optimizer, "scaler", None))

    def _scheduler_step(self) -> None:
        if self.relation_optimizer is not None and not getattr(self.trainer_optimizer, "step_was_skipped", False):
            self.relation_optimizer.step_schedule()

    def _relation_group(self) -> dict[str, Any] | None:
        return None if self.relation_optimizer is None else self.relation_optimizer.optimizer.param_groups[0]


def resumed_checkpoint(args: TrainingArguments, state: TrainerState) -> Path:
    """The checkpoint a run resumes from: ``output_dir/checkpoint-{global_step}``, whose ``trainer_state.json`` must
    hold the state the Trainer restored (callbacks are not told the folder it read).

    Raises:
        ValueError: When that folder is not the one resumed from.
    """
    folder = Path(cast(str, args.output_dir)) / f"{PREFIX}-{state.global_step}"
    saved = folder / "trainer_state.json"
    history = json.loads(saved.read_text()).get("log_history") if saved.is_file() else None
    if history != json.loads(json.dumps(state.log_history)):
        raise ValueError(f"Expected the checkpoint being resumed at {folder} (the loss state is read from "
                         f"output_dir/{PREFIX}-<step>) but got {'another run' if history is not None else 'no'} "
                         f"checkpoint there. With compute_loss_func, resume from a checkpoint inside --output_dir "
                         f"({args.output_dir}).")
    return folder
