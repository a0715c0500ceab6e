"""The matrix in a model's root card.

The Hub renders only a repo's root ``README.md``: the ``relation_matrix/README.md`` beside a saved model is a plain
file there. A model saved or pushed with its matrix (by the Trainer or the timm launcher) therefore shows, in its root
card, the heatmap (a relative link into ``relation_matrix/``, which the Hub resolves), the top related classes of the
classes whose relations are strongest, the method and α, and the commands that reuse the matrix.
"""
from __future__ import annotations

from .card import CardSource, method_card
from .card_text import hub_id, literal
from .constants import ARTIFACT_DIR, PNG_FILE
from .provenance import LOCAL_MARK, SCRATCH_MARK

SECTION_TITLE = "### The learned class-relation matrix"
PLACEHOLDER = "<this repo or folder>"


def named_source(source: str) -> str:
    """A Hub model as a link to its page; anything else (`provenance.describe_source`: a local folder marked so) by
    its name, said not to be on the Hub."""
    if hub_id(source):
        return f"[{source}](https://huggingface.co/{source})"
    name = source[:-len(LOCAL_MARK)] if source.endswith(LOCAL_MARK) else source
    return f"{literal(name)} (a local model folder, not on the Hub)"


def base_model_text(source: str | None) -> str:
    """A card's "Base model" cell: fine-tuned from a Hub model or a local folder, or trained from scratch."""
    if not source or source.startswith(SCRATCH_MARK):
        return literal(source) if source else SCRATCH_MARK
    return f"fine-tuned from {named_source(source)}"


def strongest_rows(matrix: CardSource, rows: int = 5, top_k: int = 3) -> list[tuple[str, list]]:
    """The `rows` classes whose most related class gets the most mass, with their `top_k` related classes.

    Uniform rows (no learned relation) are left out: their order would be tie order.
    """
    related, uniform = matrix.top_related(top_k), matrix.uniform_rows()
    order = sorted((i for i in range(matrix.num_classes) if not uniform[i] and related[i]),
                   key=lambda i: -related[i][0][1])
    return [(matrix.label_names[i], related[i]) for i in order[:rows]]


def matrix_section(matrix: CardSource, repo_id: str | None = None, image: bool = True, rows: int = 5,
                   top_k: int = 3, folder: str = ARTIFACT_DIR) -> str:
    """Markdown for a model's root card: heatmap, strongest relations, method and α, reuse commands.

    Args:
        matrix: The artifact saved in `folder`.
        repo_id: The model's Hub repo (in the commands; a placeholder for a local folder).
        image: Whether `folder` holds the heatmap PNG (dense matrices with matplotlib).
        rows: Classes listed.
        top_k: Related classes per listed class.
        folder: The artifact's folder, relative to the card.
    """
    info = method_card(matrix.method)
    method = literal(matrix.method) if matrix.method else "unknown"
    alpha = f"{matrix.alpha:g}" if matrix.alpha is not None else "unknown"
    lines = [SECTION_TITLE, "",
             f"Learned with {info.title if info else 'the ' + method + ' loss'}, α = {alpha}, over "
             f"{matrix.num_classes} classes; [its own card]({folder}/README.md) lists every class.", ""]
    if image:
        lines += [f"![Class-relation matrix heatmap (diagonal hidden)]({folder}/{PNG_FILE})", ""]
    strongest = strongest_rows(matrix, rows, top_k)
    if strongest:
        k = max(len(related) for _, related in strongest)
        lines += [f"Top related classes of the {len(strongest)} classes with the strongest relations:", "",
                  "| Class |" + "".join(f" #{i + 1} |" for i in range(k)), "|---|" + "---|" * k]
        lines += [f"| {literal(name)} |" + "".join(f" {literal(other)} ({p:.3f}) |" for other, p in related)
                  + " |" * (k - len(related)) for name, related in strongest]
    else:
        lines += ["Every row is uniform: no class relation was learned (e.g. too few epochs or updates)."]
    return "\n".join(lines + ["", *reuse_lines(repo_id)]) + "\n"


def reuse_lines(repo_id: str | None) -> list[str]:
    """How to reuse the matrix as fixed smoothing targets (``relation_prior``), in each front end."""
    repo = hub_id(repo_id) or PLACEHOLDER
    return ["Reuse it as fixed smoothing targets (`relation_prior`, the papers' proxy / substitute teacher):", "",
            "```bash", f"hf-labelsmooth show {repo} --top 5",
            f"python train_scripts/run_*_classification.py --label_smoothing_method relation_prior "
            f"--relation_matrix {repo} ...",
            f"hf-labelsmooth timm-train train.py --loss-type relation_prior --relation-matrix {repo} ...", "```"]
