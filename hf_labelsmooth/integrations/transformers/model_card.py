"""What a trained model says about itself: its base model and data, and the label smoothing section of its card.

`LabelSmoothingTrainer.create_model_card` renders transformers' own card, then adds the section written here
(method, α, base model, dataset, how the matrix was trained or which prior it learned from, and the learned matrix
itself: heatmap, strongest relations, reuse commands; the Hub renders only this root card). Only real Hub ids go into
the card's metadata; local models and data are named by their folder, marked local, never by an absolute path. Every
value enters the card through `relations.card_text` (escaped, one line).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...relations import ARTIFACT_DIR, relations_from_loss
from ...relations.card import method_card, training_rows
from ...relations.card_text import hub_id, literal
from ...relations.constants import CONFIG_FILE, PNG_FILE
from ...relations.folders import is_own_config
from ...relations.provenance import SCRATCH_MARK, describe_source, training_record
from ...relations.root_card import base_model_text, matrix_section, named_source

__all__ = ["CardFacts", "add_card_section", "card_facts", "card_metadata", "card_section", "describe_source",
           "fix_provenance", "hub_id", "learned_relations", "record_in_config", "remove_stale_relations",
           "round_epochs", "trainer_training_record"]

logger = logging.getLogger(__name__)

SECTION_TITLE = "## Class-relation label smoothing"
SCRATCH = "This model was trained from scratch on "
TRANSFORMERS_INTRO = re.compile(r"^This model (?:was trained from scratch|is a fine-tuned version of \[[^\]\n]*\]"
                                r"\([^)\n]*\)) on ", re.MULTILINE)


def round_epochs(epoch: float | None) -> int | float | None:
    """The epoch count as a reader wants it: 3 rather than 2.9999999, 2.67 rather than 2.6666666."""
    if epoch is None:
        return None
    rounded = round(float(epoch), 2)
    return int(rounded) if rounded.is_integer() else rounded


@dataclass
class CardFacts:
    """What the card's section states about a run (every text value untrusted: escaped when rendered)."""

    method: str
    alpha: float
    source_model: str | None = None
    dataset: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    matrix: Any = None  # the learned `RelationArtifact` (None: the method learns none)
    image: bool = False  # whether relation_matrix/ holds the heatmap
    repo_id: str | None = None


def card_section(facts: CardFacts) -> str:
    """Markdown section naming the loss, α, base model, dataset, training settings and the learned matrix."""
    info = method_card(facts.method)
    method = literal(facts.method)
    alpha_text = f"{facts.alpha:g}" + (f" ({info.alpha_note})" if info and info.alpha_note else "")
    if facts.matrix is not None:
        matrix = f"[{ARTIFACT_DIR}/]({ARTIFACT_DIR}/README.md) (its own card: every class, heatmap)"
    else:
        matrix = f"none: {method} learns no class-relation matrix"
    rows = [("Loss (`--label_smoothing_method`)", method + (f": {info.title}" if info else "")),
            ("α (mass moved off the one-hot)", alpha_text), ("Base model", base_model_text(facts.source_model)),
            ("Dataset", literal(facts.dataset) if facts.dataset else "unknown"), *training_rows(facts.training),
            ("Learned class-relation matrix", matrix)]
    lines = [SECTION_TITLE, "", "Trained with `hf_labelsmooth`'s `LabelSmoothingTrainer`.", "", "| | |", "|---|---|",
             *(f"| {key} | {value} |" for key, value in rows)]
    if facts.matrix is not None:
        lines += ["", matrix_section(facts.matrix, facts.repo_id, image=facts.image).rstrip("\n")]
    return "\n".join(lines) + "\n"


def fix_provenance(text: str, source_model: str | None) -> str:
    """transformers writes "trained from scratch" whenever the base model is not a Hub id, and an empty link for a
    model built from a config: the intro sentence says what happened instead (fine-tuned from a local folder, or
    trained from scratch)."""
    if source_model and hub_id(source_model):
        return text  # transformers' sentence links the Hub model
    if source_model and not source_model.startswith(SCRATCH_MARK):
        intro = f"This model is a fine-tuned version of {named_source(source_model)} on "
    else:
        intro = SCRATCH
    return TRANSFORMERS_INTRO.sub(lambda _: intro, text, count=1)


def add_card_section(readme: str | os.PathLike, section: str, source_model: str | None = None) -> None:
    """Insert `section` into the card at `readme`, before its "Model description" (at the end without one)."""
    path = Path(readme)
    text = fix_provenance(path.read_text(encoding="utf-8"), source_model)
    anchor = text.find("## Model description")
    text = text[:anchor] + section + "\n" + text[anchor:] if anchor >= 0 else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def card_metadata(method: str, tags: str | list[str] | None, dataset_tags: str | list[str] | None,
                  dataset_args: str | list[str] | None, dataset: str | None, dataset_config: str | None
                  ) -> tuple[list[str], str | list[str], str | list[str] | None]:
    """The card's tags, dataset tags and dataset args: the package's and the method's tags added, the trainer's
    dataset where none is given (only a Hub id: [] rather than None, or transformers lists a local builder)."""
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags += [t for t in ("hf_labelsmooth", "label-smoothing", method) if t not in tags and hub_id(t)]
    hub_dataset = hub_id(dataset)
    if dataset_tags is None:
        dataset_tags = [hub_dataset] if hub_dataset else []
    if dataset_args is None and hub_dataset:
        dataset_args = dataset_config
    return tags, dataset_tags, dataset_args


def remove_stale_relations(directory: Path, method: str) -> None:
    """Remove a ``relation_matrix/`` that an earlier run left beside a model whose `method` learns none: it would be
    read as this model's."""
    if is_own_config(directory / CONFIG_FILE):
        logger.warning("Removing %s: written by an earlier run, and %s learns no matrix.", directory, method)
        shutil.rmtree(directory)


def trainer_training_record(trainer: Any) -> dict[str, Any]:
    """How a `LabelSmoothingTrainer`'s (or the stock Trainer's `LossFunctionCallback`'s) relations were trained beyond
    the loss (`provenance.training_record`): matrix optimizer, lr, weight decay, refresh period, top-N, the prior of
    a ``relation_prior`` student."""
    optimizer = trainer.relation_optimizer.optimizer if trainer.relation_optimizer is not None else None
    return training_record(trainer.relation_loss, optimizer, trainer.options.update_every, trainer.prior)


def learned_relations(trainer: Any) -> Any:
    """The artifact of what the trainer's loss learned, with the run's model, data and training settings."""
    extra = {"dataset_config": trainer.dataset_config} if trainer.dataset_config else {}
    return relations_from_loss(trainer.relation_loss, trainer.class_names, source_model=trainer.source_model,
                               dataset=trainer.dataset, epochs=round_epochs(trainer.state.epoch),
                               training=trainer_training_record(trainer), **extra)


def record_in_config(trainer: Any) -> None:
    """Set ``hf_labelsmooth`` in the model's config (saved in its config.json): method, α, the training settings
    (for a ``relation_prior`` student, the prior's source and digest) and where the learned matrix is."""
    config = getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None)
    if config is not None:
        loss = trainer.relation_loss
        config.hf_labelsmooth = {"method": loss.spec.name, "alpha": loss.alpha,
                                 "training": trainer_training_record(trainer),
                                 "relation_matrix": f"{ARTIFACT_DIR}/" if loss.spec.learns_relations else None}


def card_facts(trainer: Any) -> CardFacts:
    """What the card's section states about a trainer's run."""
    loss = trainer.relation_loss
    matrix = learned_relations(trainer) if loss.spec.learns_relations else None
    image = (Path(trainer.args.output_dir) / ARTIFACT_DIR / PNG_FILE).is_file()
    return CardFacts(loss.spec.name, loss.alpha, trainer.source_model, trainer.dataset,
                     trainer_training_record(trainer), matrix, image, getattr(trainer, "hub_model_id", None))
