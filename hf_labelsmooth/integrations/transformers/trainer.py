"""`LabelSmoothingTrainer`: a `transformers.Trainer` whose classification loss is a class-relation loss.

Read top to bottom: building the loss (`RelationOptions`), the loss of a batch, the matrix's optimizer, checkpoints
(owned by `checkpoint.LossCheckpoint`), logs, then saving and sharing (the matrix beside the model, one Hub commit,
the model card).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from transformers import Trainer

from ...losses.base import RelationLoss
from ...losses.tokens import count_targets
from ...metrics.functional import relation_stats
from ...relations import ARTIFACT_DIR, needs_topk_artifact
from ...relations.card_text import hub_id, literal
from .callbacks import RelationLossCallback
from .checkpoint import LossCheckpoint
from .data_checks import check_dataset_labels, check_problem_type
from .heatmap import RelationHeatmapCallback
from .model_card import add_card_section, card_facts, card_metadata, card_section, describe_source, \
    learned_relations, record_in_config, remove_stale_relations
from .relation_optimizer import RelationOptimizer
from .training_args import LabelSmoothingTrainingArguments, config_label_names

logger = logging.getLogger(__name__)


class LabelSmoothingTrainer(Trainer):
    """`Trainer` for classifiers with any registered loss (`LabelSmoothingTrainingArguments.label_smoothing_method`).

    The loss is per sample, summed and divided by the number of samples of the whole (accumulated, all-process)
    batch, so gradient accumulation and multi-process runs match one large batch. A learnable matrix lives outside
    the wrapped model (DDP or FSDP) with an optimizer of its own (`RelationOptimizer`: the Trainer's optimizer class,
    `relation_lr`, the same schedule) that steps with the model's, after its gradients are averaged across processes
    once. The loss state is saved with each checkpoint (``relation_loss.safetensors``, with the matrix's optimizer in
    ``relation_optimizer.safetensors``), restored on resume and, with `load_best_model_at_end`, from the best
    checkpoint. `save_model` writes the learned relations beside the model (``relation_matrix/``, see
    `save_relations`) before `push_to_hub` uploads both in one commit, with a model card naming the method, α, base
    model, dataset and the matrix card. With ``torch_compile`` the loss is compiled with the model's backend and mode.

    Args:
        *args: As `transformers.Trainer`; `args` must be `LabelSmoothingTrainingArguments`.
        relation_loss: A ready loss to use instead of the one built from the arguments.
        source_model: The base model as the user named it (Hub id or local path); default `config._name_or_path`.
        dataset: The training data (Hub dataset id or local path); local paths are recorded as their folder name
            marked local, and only Hub ids reach the card's metadata.
        dataset_config: The dataset's configuration name, if any.
        **kwargs: As `transformers.Trainer` (except `compute_loss_func`).
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, relation_loss: RelationLoss | None = None, source_model: str | None = None,
                 dataset: str | None = None, dataset_config: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, LabelSmoothingTrainingArguments):
            raise TypeError(f"Expected `args` to be LabelSmoothingTrainingArguments but got "
                            f"{type(self.args).__name__}. Build them with LabelSmoothingTrainingArguments(...).")
        if self.compute_loss_func is not None:
            raise ValueError("Expected no `compute_loss_func` with LabelSmoothingTrainer but got one: the loss comes "
                             "from `label_smoothing_method`. Use a plain Trainer for a custom loss.")
        if self.model is None:
            raise ValueError("Expected a `model` but got None (model_init is not supported).")
        config = self.accelerator.unwrap_model(self.model).config
        check_problem_type(config)
        self.options = self.args.relation_options()
        # `class_names`, not `label_names`: the Trainer's `label_names` are the batch keys of the labels
        self.class_names = config_label_names(config)
        loss, self.prior = (relation_loss, None) if relation_loss is not None else self.options.build_with_prior(
            int(config.num_labels), self.class_names, reduction="none")  # prior: `provenance.prior_record`
        loss.reduction = "none"
        self.relation_loss = loss.to(self.args.device)
        self.relation_loss_fn: nn.Module = self.relation_loss
        if self.args.torch_compile:  # the Trainer compiles the model; the loss is compiled alike (breaks: the checks)
            # cast: torch.compile of a module returns an OptimizedModule, its stubs say a plain callable;
            # ignore: its overloads leave out backend=None, which its implementation takes (the default backend)
            self.relation_loss_fn = cast(nn.Module, torch.compile(
                self.relation_loss, backend=self.args.torch_compile_backend,  # type: ignore[arg-type]
                mode=self.args.torch_compile_mode))
        self.relation_optimizer: RelationOptimizer | None = None
        self.loss_checkpoint = LossCheckpoint(self.relation_loss, lambda: self.relation_optimizer)
        self.add_callback(RelationLossCallback(self.relation_loss, self.options.update_every,
                                               optimizer_step=self._relation_optimizer_step,
                                               scheduler_step=self._relation_scheduler_step,
                                               relation_group=self._relation_group))
        self.add_callback(RelationHeatmapCallback(self.relation_loss, self.class_names, self.callback_handler.callbacks,
                                                  self.args.relation_heatmap_every))
        self.source_model = describe_source(source_model or getattr(config, "_name_or_path", None))
        self.dataset, self.dataset_config = describe_source(dataset), dataset_config
        if self.args.load_best_model_at_end and self.args.save_only_model and loss.spec.learns_relations:
            raise ValueError(f"Expected save_only_model=False with load_best_model_at_end=True for method "
                             f"{loss.spec.name!r} but got save_only_model=True: the best checkpoint must hold the loss "
                             "state for the saved matrix to be the best one's. Drop --save_only_model.")

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.train`, after checking up front the datasets' labels against num_labels (where that is cheap)
        and that a checkpoint to resume from was written by a run of the same method."""
        evals = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"": self.eval_dataset}
        check_dataset_labels({"train": self.train_dataset, **{f"eval{'[' + k + ']' if k else ''}": d
                                                              for k, d in evals.items()}},
                             self.relation_loss.num_classes, self.relation_loss.ignore_index)
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            checkpoint = get_last_checkpoint(self.args.output_dir)
        if checkpoint:
            self.loss_checkpoint.check_resumable(checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Tensor | int | None = None) -> Tensor | tuple[Tensor, Any]:
        """Relation loss of the model's logits: `sum / num_items_in_batch` in training, batch mean otherwise."""
        if "labels" not in inputs:
            raise ValueError(f"Expected a 'labels' entry in the batch but got {sorted(inputs)}. Name the dataset's "
                             "label column 'labels' (or 'label', which the default data collators rename): "
                             "LabelSmoothingTrainer always reads inputs['labels'].")
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        self.relation_loss.train(model.training)  # statistics (OLS) update only while training
        per_sample = self.relation_loss_fn(logits, labels)  # [B], or [B, T] for tokens (0 where ignored)
        if model.training and num_items_in_batch is not None:  # global count: DDP's mean over processes needs × world
            loss = per_sample.sum() * self.accelerator.num_processes / num_items_in_batch
        else:  # the mean over the counted targets (tokens other than -100), per accumulation step when training
            loss = per_sample.sum() / count_targets(labels, self.relation_loss.ignore_index).clamp_min(1)
            loss = loss / self.current_gradient_accumulation_steps if model.training else loss
        return (loss, outputs) if return_outputs else loss

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> Tensor | None:
        """Targets in the accumulated batch, summed over processes: samples (labels ids [B] or soft [B, K]), or tokens
        whose label is not ignored (token labels [B, T]: -100 by default), as the loss counts them."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        ignore_index = self.relation_loss.ignore_index
        count = torch.stack([count_targets(b["labels"], ignore_index).to(device) for b in batch_samples]).sum()
        if self.accelerator.num_processes > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, and `relation_optimizer` for a learnable matrix (see `RelationOptimizer`)."""
        optimizer = super().create_optimizer(model)
        if self.relation_optimizer is None:
            # transformers annotates `model` as PreTrainedModel, but its own create_optimizer passes any nn.Module
            cls, kwargs = self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(
                self.args, model)  # type: ignore[arg-type]
            self.relation_optimizer = RelationOptimizer.for_loss(self.relation_loss, self.options, self.args, cls,
                                                                 kwargs)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        """The Trainer's scheduler, and the same schedule for `relation_optimizer`."""
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.relation_optimizer is not None:
            self.relation_optimizer.schedule(self.args, num_training_steps, scheduler)
        return scheduler

    def _relation_group(self) -> dict[str, Any] | None:
        return None if self.relation_optimizer is None else self.relation_optimizer.optimizer.param_groups[0]

    def _relation_optimizer_step(self) -> None:
        if self.relation_optimizer is not None:
            self.relation_optimizer.step(getattr(self.accelerator, "scaler", None))

    def _relation_scheduler_step(self) -> None:
        if self.relation_optimizer is not None and not self.accelerator.optimizer_step_was_skipped:
            self.relation_optimizer.step_schedule()

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        self.loss_checkpoint.save(output_dir, self.args.should_save, self.state.global_step)  # collective
        super()._save_optimizer_and_scheduler(output_dir)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.loss_checkpoint.load(checkpoint)

    def _load_best_model(self) -> None:
        super()._load_best_model()
        self.loss_checkpoint.load_best(str(self.state.best_model_checkpoint))  # set: the Trainer loaded the best

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the matrix's mean row entropy and mean off-diagonal mass to training logs and the final metrics."""
        loss = self.relation_loss
        loss.raise_deferred(f"the logging step {self.state.global_step}")  # the Trainer syncs here anyway
        training = "loss" in logs or "train_loss" in logs  # "train_loss": the summary `train()` returns
        if training and loss.spec.learns_relations and not needs_topk_artifact(loss):  # large sparse K: no matrix
            logs.update(relation_stats(loss.relation_matrix()))
        super().log(logs, start_time)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model; a final (non-checkpoint) save also writes ``relation_matrix/``, then pushes both. The
        model's config.json records how its labels were smoothed (`model_card.record_in_config`)."""
        self.relation_loss.raise_deferred(f"a save to {output_dir}")  # before the weights are written (a checkpoint)
        record_in_config(self)
        super().save_model(output_dir, _internal_call=True)  # Trainer.save_model would push before the matrix exists
        if _internal_call:
            return
        self.save_relations(output_dir)
        if self.args.push_to_hub:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def save_relations(self, output_dir: str | None = None) -> None:
        """Write the learned relations to ``<output_dir>/relation_matrix/`` (methods that learn them).

        For a method that learns none, a ``relation_matrix/`` left there by an earlier run is removed: it would be
        read as this model's.
        """
        if not self.args.should_save:
            return
        root = output_dir or self.args.output_dir
        assert root is not None  # TrainingArguments.__post_init__ fills output_dir
        directory = Path(root) / ARTIFACT_DIR
        if not self.relation_loss.spec.learns_relations:
            remove_stale_relations(directory, self.relation_loss.spec.name)
            return
        learned_relations(self).save_pretrained(directory, repo_id=getattr(self, "hub_model_id", None))

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None,
                    **kwargs: Any) -> Any:
        """As `Trainer.push_to_hub`, with ``relation_matrix/`` written first: one commit holds the model and matrix."""
        self.save_relations()
        return super().push_to_hub(commit_message, blocking, token, revision, private, **kwargs)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self.args.hub_strategy != "end":
            self.save_relations()  # the checkpoint's relations beside its model files
        super()._push_from_checkpoint(checkpoint_folder)

    def create_model_card(self, language: str | None = None, license: str | None = None,
                          tags: str | list[str] | None = None, model_name: str | None = None,
                          finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                          dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                          dataset_args: str | list[str] | None = None) -> None:
        """Transformers' model card plus a section naming the method, α, base model, dataset, training settings and
        showing the learned matrix (heatmap, strongest relations, reuse commands; `model_card`).

        Defaults come from the trainer (`source_model`, `dataset`); only Hub ids go into the card's metadata, and
        every text value is escaped (`relations.card_text`).
        """
        tags, dataset_tags, dataset_args = card_metadata(self.relation_loss.spec.name, tags, dataset_tags,
                                                         dataset_args, self.dataset, self.dataset_config)
        assert self.args.output_dir is not None  # TrainingArguments.__post_init__ fills output_dir
        text = dataset or self.dataset
        super().create_model_card(language, license, tags, literal(model_name or Path(self.args.output_dir).name),
                                  finetuned_from or hub_id(self.source_model), tasks, dataset_tags,
                                  [literal(d) for d in ([text] if isinstance(text, str) else text)] if text else None,
                                  dataset_args)
        if self.is_world_process_zero():
            add_card_section(Path(self.args.output_dir) / "README.md", card_section(card_facts(self)),
                             self.source_model if finetuned_from is None else finetuned_from)
