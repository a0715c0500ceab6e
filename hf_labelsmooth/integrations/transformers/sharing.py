"""Saving and sharing a `LabelSmoothingTrainer` run: the matrix beside the model, the best checkpoint's matrix, one
Hub commit with model + matrix + card. The base class of `LabelSmoothingTrainer`, so that trainer.py keeps to
training."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import Trainer

from ...losses.base import RelationLoss
from ...relations import ARTIFACT_DIR, save_relations
from ...relations.constants import CONFIG_FILE
from ...relations.folders import is_own_config
from .checkpoint import load_loss_state
from .model_card import add_card_section, card_section, hub_id, round_epochs

logger = logging.getLogger(__name__)


class RelationSharingTrainer(Trainer):
    """`Trainer` overrides for saving, pushing and the model card; `LabelSmoothingTrainer` sets the attributes."""

    relation_loss: RelationLoss
    class_names: list[str]
    source_model: str | None
    dataset: str | None
    dataset_config: str | None

    def _load_best_model(self) -> None:
        super()._load_best_model()
        best = str(self.state.best_model_checkpoint)  # set: the Trainer only loads the best model when it is
        if not load_loss_state(self.relation_loss, best):
            logger.warning("No relation_loss.safetensors in %s: the saved matrix is the last step's, not the best "
                           "checkpoint's.", best)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model; a final (non-checkpoint) save also writes ``relation_matrix/``, then pushes both."""
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
        if not self.relation_loss.learns_relations:
            if is_own_config(directory / CONFIG_FILE):
                logger.warning("Removing %s: written by an earlier run, and %s learns no matrix.", directory,
                               self.relation_loss.name)
                shutil.rmtree(directory)
            return
        extra = {"dataset_config": self.dataset_config} if self.dataset_config else {}
        save_relations(self.relation_loss, self.class_names, directory, repo_id=getattr(self, "hub_model_id", None),
                       source_model=self.source_model, dataset=self.dataset, epochs=round_epochs(self.state.epoch),
                       **extra)

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
        """Transformers' model card plus a section naming the method, α, base model, dataset and the matrix card.

        Defaults come from the trainer (`source_model`, `dataset`); only Hub ids go into the card's metadata.
        """
        loss = self.relation_loss
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        tags += [t for t in ("hf_labelsmooth", "label-smoothing", loss.name) if t not in tags]
        hub_dataset = hub_id(self.dataset)
        if dataset_tags is None:  # [] rather than None: transformers would list a local builder ("imagefolder")
            dataset_tags = [hub_dataset] if hub_dataset else []
        if dataset_args is None and hub_dataset:
            dataset_args = self.dataset_config
        super().create_model_card(language, license, tags, model_name, finetuned_from or hub_id(self.source_model),
                                  tasks, dataset_tags, dataset or self.dataset, dataset_args)
        if self.is_world_process_zero():
            section = card_section(loss.name, loss.alpha, self.source_model, self.dataset, loss.learns_relations,
                                   getattr(self, "hub_model_id", None))
            assert self.args.output_dir is not None  # TrainingArguments.__post_init__ fills output_dir
            add_card_section(Path(self.args.output_dir) / "README.md", section)
