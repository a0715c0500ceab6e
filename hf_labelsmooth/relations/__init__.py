"""The artifact: learned class relations as files, a model card and a Hub repo.

- `ClassRelationMatrix`: a dense K×K matrix (with LLS / LS++ logits); `RelationTopK`: the per-row top-N table of a
  sparse loss at large K. Both have `save_pretrained` / `from_pretrained` / `push_to_hub` / `generate_model_card`.
- `save_relations(loss, label_names, dir, **metadata)` writes whichever fits the loss; `load_relations` reads both.
- The format (files, config.json fields, versions and their upgrade): `constants` and `schema`, docs/format.md.
  Where an artifact is (folder, Hub repo, saved model): `folders`. Files are written and read through
  `hf_labelsmooth._io` (atomic, untrusted).
"""
from __future__ import annotations

from .artifact import RelationArtifact
from .constants import ARTIFACT_DIR
from .matrix import ClassRelationMatrix
from .plot import plot_relation_matrix
from .save import load_relations, relations_from_loss, save_relations
from .topk import RelationTopK, needs_topk_artifact

__all__ = [
    "ARTIFACT_DIR", "ClassRelationMatrix", "RelationArtifact", "RelationTopK", "load_relations",
    "needs_topk_artifact", "plot_relation_matrix", "relations_from_loss", "save_relations",
]
