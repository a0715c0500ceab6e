"""`save_relations`: the one way every integration and script writes what a loss learned."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .artifact import RelationArtifact
from .matrix import ClassRelationMatrix
from .topk import RelationTopK, needs_topk_artifact


def relations_from_loss(loss: Any, label_names: Sequence[str], **metadata: Any) -> RelationArtifact:
    """The artifact of a loss: its top-N table for a sparse loss above the dense size, else its dense matrix."""
    kind = RelationTopK if needs_topk_artifact(loss) else ClassRelationMatrix
    return kind.from_loss(loss, label_names=list(label_names), **metadata)


def save_relations(loss: Any, label_names: Sequence[str], directory: str | os.PathLike, *, repo_id: str | None = None,
                   **metadata: Any) -> Path:
    """Write the relations learned by `loss` as an artifact folder (tensors, config.json, card, heatmap).

    Args:
        loss: A `RelationLoss`.
        label_names: Class names in the order of the model's outputs.
        directory: The artifact folder (integrations use ``<output_dir>/relation_matrix``).
        repo_id: Hub repo the folder is pushed to (shown in the card's usage snippet).
        **metadata: Metadata fields of `RelationArtifact` (``source_model``, ``dataset``, ...); other keys go to the
            config's ``extra``.

    Returns:
        The folder written.
    """
    return relations_from_loss(loss, label_names, **metadata).save_pretrained(directory, repo_id=repo_id)


def load_relations(path_or_repo: str | os.PathLike, **kwargs: Any) -> RelationArtifact:
    """Load a saved artifact of either kind (`ClassRelationMatrix` or `RelationTopK`); see `from_pretrained`."""
    return RelationArtifact.from_pretrained(path_or_repo, **kwargs)
