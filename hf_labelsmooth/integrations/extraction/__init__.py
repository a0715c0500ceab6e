"""``hf-labelsmooth extract``: a class-relation matrix read out of any trained classifier (transformers or timm) over a
labelled dataset, saved as a normal artifact and reused as ``--relation_matrix`` / ``relation_prior``.

The math is `hf_labelsmooth.relations.extract` (torch only); this package loads the model (transformers or timm) and
the data (`datasets`, as the training scripts do) and runs the batches.
"""
from __future__ import annotations

from .arguments import ExtractArguments
from .run import extract_relations

__all__ = ["ExtractArguments", "extract_relations"]
