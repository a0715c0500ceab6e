"""What a trained model says about itself: its base model and data, and the label smoothing section of its card.

`LabelSmoothingTrainer.create_model_card` renders transformers' own card, then adds the section written here
(method, α, base model, dataset and a link to the ``relation_matrix/`` card). Only real Hub ids go into the card's
metadata; local models and data are named by their folder, marked local, never by an absolute path.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ...relations import ARTIFACT_DIR
from ...relations.card import HUB_ID, method_card
from ...relations.constants import CONFIG_FILE
from ...relations.folders import is_own_config

logger = logging.getLogger(__name__)

LOCAL_MARK = " (local)"
SECTION_TITLE = "## Class-relation label smoothing"


def describe_source(value: str | os.PathLike | None) -> str | None:
    """A Hub id as given; an existing local path as its folder name marked local (``"digits (local)"``)."""
    if value is None or not str(value):
        return None
    path = Path(value).expanduser()
    if not path.exists():
        return str(value)
    return f"{path.resolve().name}{LOCAL_MARK}"


def hub_id(described: str | None) -> str | None:
    """`described` when it is a Hub repo id, None for local sources (see `describe_source`) and other text."""
    return described if described and HUB_ID.fullmatch(described) else None


def round_epochs(epoch: float | None) -> int | float | None:
    """The epoch count as a reader wants it: 3 rather than 2.9999999, 2.67 rather than 2.6666666."""
    if epoch is None:
        return None
    rounded = round(float(epoch), 2)
    return int(rounded) if rounded.is_integer() else rounded


def card_section(method: str, alpha: float, source_model: str | None, dataset: str | None,
                 learns_relations: bool, repo_id: str | None = None) -> str:
    """Markdown section naming the loss, α, base model, dataset and the matrix card (or why there is none)."""
    info = method_card(method)
    title = f"`{method}`" + (f": {info.title}" if info else "")
    alpha_text = f"{alpha:g}" + (f" ({info.alpha_note})" if info and info.alpha_note else "")
    if learns_relations:
        matrix = f"[`{ARTIFACT_DIR}/`]({ARTIFACT_DIR}/README.md) (its own card: top related classes, heatmap)"
    else:
        matrix = f"none: `{method}` learns no class-relation matrix"
    rows = [("Loss (`--label_smoothing_method`)", title), ("α (mass moved off the one-hot)", alpha_text),
            ("Base model", source_model or "unknown"), ("Dataset", dataset or "unknown"),
            ("Learned class-relation matrix", matrix)]
    lines = [SECTION_TITLE, "", "Trained with `hf_labelsmooth`'s `LabelSmoothingTrainer`.", "", "| | |", "|---|---|",
             *(f"| {key} | {value} |" for key, value in rows)]
    if learns_relations:
        repo = repo_id or "<this repo>"
        lines += ["", "Reuse the matrix as fixed smoothing targets (`relation_prior`): "
                  f"`--relation_matrix {repo}` in the training scripts, or in Python:", "", "```python",
                  "from hf_labelsmooth import load_relations", "",
                  f'matrix = load_relations("{repo}")  # reads {ARTIFACT_DIR}/', "```", "",
                  f"Print its most related classes: `hf-labelsmooth show {repo}`."]
    return "\n".join(lines) + "\n"


def add_card_section(readme: str | os.PathLike, section: str) -> None:
    """Insert `section` into the card at `readme`, before its "Model description" (at the end without one)."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    anchor = text.find("## Model description")
    text = text[:anchor] + section + "\n" + text[anchor:] if anchor >= 0 else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def card_metadata(method: str, tags: str | list[str] | None, dataset_tags: str | list[str] | None,
                  dataset_args: str | list[str] | None, dataset: str | None, dataset_config: str | None
                  ) -> tuple[list[str], str | list[str], str | list[str] | None]:
    """The card's tags, dataset tags and dataset args: the package's and the method's tags added, the trainer's
    dataset where none is given (only a Hub id: [] rather than None, or transformers lists a local builder)."""
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags += [t for t in ("hf_labelsmooth", "label-smoothing", method) if t not in tags]
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
