"""Model cards of class-relation artifacts: the package template rendered by huggingface_hub, text from the registry."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from ..losses.registry import MethodCard, get_loss_class, is_loss
from .card_text import hub_id, literal
from .constants import CARD_FILE, PNG_FILE
from .extract import EXTRACTED_METHOD

logger = logging.getLogger(__name__)
TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "relation_matrix.md"  # package data
MAX_TABLE_ROWS = 100
UNIFORM_NOTE = ("every other class gets the same mass: no learned relation (e.g. an OLS class with no correctly "
                "classified training sample in the last update period)")
EXTRACTED_TITLE = "extracted from a trained classifier"
TAGS = ["hf_labelsmooth", "label-smoothing", "class-relation-matrix", "model_hub_mixin"]
TRAINING_LABELS = {  # the `training` field of config.json, as the card's table names it
    "optimizer": "Matrix optimizer", "relation_lr": "Matrix learning rate (`relation_lr`)",
    "relation_weight_decay": "Matrix weight decay", "update_every": "Refresh period (optimizer steps)",
    "top_n": "Related classes kept per row (`top_n`)", "architecture": "Network architecture",
}


class CardSource(Protocol):
    """What a card reads of an artifact (`RelationArtifact` has it all; the card does not import it)."""

    label_names: list[str]
    method: str | None
    alpha: float | None
    source_model: str | None
    dataset: str | None
    epochs: int | float | None
    extra: dict[str, Any]
    training: dict[str, Any]

    @property
    def num_classes(self) -> int: ...

    def top_related(self, k: int = 3, include_self: bool = False) -> list[list[tuple[str, float]]]: ...

    def uniform_rows(self) -> list[bool]: ...

    def plot(self, path: str | os.PathLike | None = None) -> Any: ...


def method_card(method: str | None) -> MethodCard | None:
    """The `MethodCard` declared by the registered loss `method` (None for unknown or unregistered names)."""
    return get_loss_class(method).spec.card if method and is_loss(method) else None


def render_card(matrix: CardSource, image_file: str | None = PNG_FILE, top_k: int = 3,
                repo_id: str | None = None, template_path: str | os.PathLike | None = None) -> Any:
    """Render the model card (a `huggingface_hub.ModelCard`) of `matrix`.

    Args:
        matrix: The class-relation matrix or top-N table.
        image_file: Relative path of the heatmap PNG shown in the card (None: no heatmap).
        top_k: Related classes per row in the table.
        repo_id: Repo id shown in the usage snippet (a placeholder when None).
        template_path: Jinja template; defaults to the package's `templates/relation_matrix.md`.
    """
    from huggingface_hub import ModelCard

    info = method_card(matrix.method)
    method = literal(matrix.method) if matrix.method else None  # config.json is untrusted: never raw in the card
    extracted = matrix.method == EXTRACTED_METHOD
    uniform = matrix.uniform_rows()
    rows = [(literal(name), [(literal(other), p) for other, p in related], is_flat)
            for name, related, is_flat in zip(matrix.label_names, matrix.top_related(top_k), uniform)]
    return ModelCard.from_template(
        card_data(matrix), template_path=str(template_path or TEMPLATE_PATH),
        method=method, method_title=info.title if info else (EXTRACTED_TITLE if extracted else method or ""),
        method_description=info.description if info else extraction_description(matrix) if extracted else
        f"Relation matrix produced by the {method or 'unknown'} loss.",
        origin="extracted from a trained classifier's predictions" if extracted else "learned with `hf_labelsmooth`",
        missing="none (extracted, not trained)" if extracted else "unknown",
        alpha=matrix.alpha, source_model=matrix.source_model and literal(matrix.source_model),
        dataset=matrix.dataset and literal(matrix.dataset),
        epochs=matrix.epochs, num_classes=matrix.num_classes, logits_kind=getattr(matrix, "logits_kind", None),
        extra={literal(k): literal(v) for k, v in flat(matrix.extra).items()}, training=training_rows(matrix.training),
        image_file=image_file, top_k=min(top_k, matrix.num_classes - 1), top_rows=rows[:MAX_TABLE_ROWS],
        truncated=len(rows) > MAX_TABLE_ROWS, repo_hint=hub_id(repo_id) or "<user>/<repo>",
        citation=info.bibtex if info else None, top_n=getattr(matrix, "top_n", None),
        alpha_note=info.alpha_note if info else None, uniform_count=sum(uniform), uniform_note=UNIFORM_NOTE,
    )


def flat(extra: dict[str, Any]) -> dict[str, Any]:
    """Metadata for the card's table: a nested object (e.g. ``extraction``) as one row per field, ``key.field``."""
    rows: dict[str, Any] = {}
    for key, value in extra.items():
        rows.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    return rows


def extraction_description(matrix: CardSource) -> str:
    """What an extracted matrix is: which model, which data, which statistic (`hf-labelsmooth extract`)."""
    found = matrix.extra.get("extraction")
    e: dict[str, Any] = found if isinstance(found, dict) else {}
    model, data = literal(matrix.source_model or "an unnamed model"), literal(matrix.dataset or "unnamed data")
    which = "correctly classified samples" if e.get("correct_only") else "samples"
    self_note = (" The diagonal is excluded (each row renormalised over the other classes)." if e.get("exclude_self")
                 else " The diagonal is the model's mean confidence in the true class.")
    return (f"Extracted from **{model}** on **{data}** (split `{literal(e.get('split', '?'))}`) with "
            f"`hf-labelsmooth extract`: row `R[c]` is the model's mean predicted distribution (softmax at temperature "
            f"{literal(e.get('temperature', 1.0))}) over the {literal(e.get('samples', '?'))} {which} of class `c`; "
            "a class with none "
            f"gets a uniform row.{self_note} No loss was trained: reuse it as a proxy teacher with `relation_prior`, "
            "which sets the smoothing mass α.")


def card_data(matrix: CardSource) -> Any:
    """The card's metadata (`ModelCardData`): Hub ids only (`base_model`: the model the matrix was learned with,
    which places the repo in its model tree; `datasets`), the mixin's tags, the method's tag when registered."""
    from huggingface_hub import ModelCardData

    dataset, base_model = hub_id(matrix.dataset), hub_id(matrix.source_model)
    tags = TAGS + ([matrix.method] if matrix.method and is_loss(matrix.method) else [])
    return ModelCardData(library_name="hf_labelsmooth", tags=tags, base_model=base_model,
                         datasets=[dataset] if dataset else None)


def training_rows(training: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The `training` field of config.json as (label, value) rows of the card, every value literal text."""
    rows = []
    for key, value in (training or {}).items():
        if key == "prior" and isinstance(value, dict):
            rows.append(("Prior matrix (`relation_prior`)", prior_text(value)))
        elif key == "update_every" and value is None:
            rows.append((TRAINING_LABELS[key], "each epoch"))
        elif value is not None:
            rows.append((TRAINING_LABELS.get(key, literal(key)), literal(value)))
    return rows


def prior_text(prior: dict[str, Any]) -> str:
    """The prior a matrix or model was trained against: its Hub id or local folder, and its digest."""
    source = prior.get("source")
    digest = prior.get("sha256")
    text = literal(source) if source else "unknown"
    return text + (f" (sha256 {literal(digest)})" if digest else "")


def card_files(matrix: CardSource, repo_id: str | None = None) -> dict[str, bytes]:
    """``relation_matrix.png`` (heatmap, dense matrices only) and ``README.md`` (card), rendered in memory."""
    from .plot import figure_bytes

    try:
        figure = matrix.plot()
    except ImportError:  # matplotlib is the optional `plot` extra: the card goes without its heatmap
        logger.warning("matplotlib is not installed: the card has no heatmap (pip install 'hf_labelsmooth[plot]').")
        figure = None
    card = render_card(matrix, image_file=PNG_FILE if figure is not None else None, repo_id=repo_id)
    files = {PNG_FILE: figure_bytes(figure)} if figure is not None else {}
    return {**files, CARD_FILE: str(card).encode("utf-8")}
