"""What a trained model says about itself: its base model and data, and the label smoothing section of its card.

`LabelSmoothingTrainer.create_model_card` renders transformers' own card, then adds the section written here
(method, α, base model, dataset, how the matrix was trained or which prior it learned from, and the learned matrix
itself: heatmap, strongest relations, reuse commands; the Hub renders only this root card). Only real Hub ids go into
the card's metadata; local models and data are named by their folder, marked local, never by an absolute path. Every
value enters the card through `relations.card_text` (escaped, one line).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...relations import ARTIFACT_DIR
from ...relations.card import method_card, training_rows
from ...relations.card_text import hub_id, literal
from ...relations.provenance import SCRATCH_MARK, describe_source
from ...relations.root_card import base_model_text, matrix_section, named_source

__all__ = ["CardFacts", "add_card_section", "card_section", "describe_source", "fix_provenance", "hub_id",
           "round_epochs"]

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
