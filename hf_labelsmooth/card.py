"""Model cards of class-relation matrices: rendered from `model_cards/relation_matrix.md` with huggingface_hub."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .relation_io import CARD_FILE, PNG_FILE, atomic_write_bytes

if TYPE_CHECKING:
    from .relation_matrix import ClassRelationMatrix

TEMPLATE_PATH = Path(__file__).resolve().parent / "model_cards" / "relation_matrix.md"  # symlink to ../model_cards
MAX_TABLE_ROWS = 100
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")

# Titles and authors as printed in the papers' headers (shared/papers/*.txt); no venue is given there.
METHODS: dict[str, dict[str, str]] = {
    "ols": {
        "title": "Online Label Smoothing (OLS)",
        "description": "OLS accumulates, for every class, the predicted distributions of the correctly classified "
                       "training samples during an epoch; the normalised rows become the soft targets of the next "
                       "epoch. Loss: α·CE(e_y, p) + (1-α)·H(R[y], p).",
        "bibtex": "@misc{zhang_delving_label_smoothing,\n  title  = {Delving Deep into Label Smoothing},\n"
                  "  author = {Zhang, Chang-Bin and Jiang, Peng-Tao and Hou, Qibin and Wei, Yunchao and Han, Qi and "
                  "Li, Zhen and Cheng, Ming-Ming}\n}",
    },
    "lspp": {
        "title": "Label Smoothing++ (LS++)",
        "description": "LS++ learns logits C; row y is a softmax over the K-1 non-target classes (diagonal exactly 0). "
                       "Target (1-α)·e_y + α·R[y], symmetric cross-entropy with stop-gradients.",
        "bibtex": "@misc{chhabra_label_smoothing_plus_plus,\n  title  = {Label Smoothing++: Enhanced Label "
                  "Regularization for Training Neural Networks},\n  author = {Chhabra, Sachin and Venkateswara, "
                  "Hemanth and Li, Baoxin}\n}",
    },
    "lls": {
        "title": "Learnable Label Smoothing (LLS)",
        "description": "LLS learns logits Q with R[y] = softmax(Q[y]) (diagonal included). Target "
                       "(1-α)·e_y + α·R[y], loss (KL(t‖p) + KL(p‖t)) / 2 with gradients to the network and Q.",
        "bibtex": "@misc{anonymous_lls,\n  title  = {LLS: Regulating Neural Network Training via Learnable Label "
                  "Smoothing},\n  author = {Anonymous authors},\n  note   = {Paper under double-blind review}\n}",
    },
    "slr": {
        "title": "Stochastic Label Refinery (SLR)",
        "description": "SLR refines per-sample soft labels by out-of-fold predictions (EM); this matrix aggregates "
                       "them per class.",
        "bibtex": "@misc{fang_stochastic_label_refinery,\n  title  = {Stochastic Label Refinery: Toward Better "
                  "Target Label Distribution},\n  author = {Fang, Xi and Yang, Jiancheng and Ni, Bingbing}\n}",
    },
}


def render_card(matrix: "ClassRelationMatrix", image_file: str = PNG_FILE, top_k: int = 3,
                repo_id: str | None = None, template_path: str | os.PathLike | None = None) -> Any:
    """Render the model card (a `huggingface_hub.ModelCard`) of `matrix`.

    Args:
        matrix: The class-relation matrix.
        image_file: Relative path of the heatmap PNG shown in the card.
        top_k: Related classes per row in the table.
        repo_id: Repo id shown in the usage snippet (a placeholder when None).
        template_path: Jinja template; defaults to `model_cards/relation_matrix.md`.
    """
    from huggingface_hub import ModelCard, ModelCardData

    info = METHODS.get(matrix.method or "", {})
    tags = ["hf_labelsmooth", "label-smoothing", "class-relation-matrix"] + ([matrix.method] if matrix.method else [])
    hub_dataset = matrix.dataset if matrix.dataset and HUB_ID.fullmatch(matrix.dataset) else None  # not local paths
    card_data = ModelCardData(library_name="hf_labelsmooth", tags=tags, datasets=[hub_dataset] if hub_dataset else None)
    rows = list(zip(matrix.label_names, matrix.top_related(top_k)))
    return ModelCard.from_template(
        card_data, template_path=str(template_path or TEMPLATE_PATH),
        method=matrix.method, method_title=info.get("title", matrix.method or ""),
        method_description=info.get("description", f"Relation matrix produced by the `{matrix.method}` loss."),
        alpha=matrix.alpha, source_model=matrix.source_model, dataset=matrix.dataset, epochs=matrix.epochs,
        num_classes=matrix.num_classes, logits_kind=matrix.logits_kind, extra=matrix.extra,
        image_file=image_file, top_k=min(top_k, matrix.num_classes - 1), top_rows=rows[:MAX_TABLE_ROWS],
        truncated=len(rows) > MAX_TABLE_ROWS, repo_hint=repo_id or "<user>/<repo>", citation=info.get("bibtex"),
    )


def write_card(matrix: "ClassRelationMatrix", directory: str | os.PathLike, repo_id: str | None = None) -> None:
    """Write `relation_matrix.png` (heatmap) and `README.md` (card) into `directory`, each atomically."""
    directory = Path(directory)
    matrix.plot(directory / PNG_FILE)
    card = render_card(matrix, image_file=PNG_FILE, repo_id=repo_id)
    atomic_write_bytes(directory / CARD_FILE, str(card).encode("utf-8"))
