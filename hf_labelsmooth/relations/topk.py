"""`RelationTopK`: the per-row top-N relations of a sparse loss too large for a dense K×K artifact.

Files (docs/format.md): ``relation_topk.safetensors`` (``indices`` [K, N] class ids and ``values`` [K, N] their
probabilities in R; the rest of a row's mass, the tail, is spread uniformly over the other classes) and
``config.json``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..losses.functional import topk_rows
from ..losses.sparse.slots import DENSE_MATRIX_LIMIT
from . import checks
from .artifact import RelationArtifact
from .constants import TOPK_FILE
from .matrix import UNIFORM_ATOL


def needs_topk_artifact(loss: Any) -> bool:
    """True for a sparse (`top_n`) loss whose K is above the size where a dense relation matrix is built."""
    return getattr(loss, "top_n", None) is not None and getattr(loss, "num_classes", 0) > DENSE_MATRIX_LIMIT


def check_topk(indices: Any, values: Any) -> tuple[Tensor, Tensor]:
    """Validate a top-N table: integer ids [K, N] in [0, K), finite non-negative values with row sums <= 1."""
    if not isinstance(indices, Tensor) or not isinstance(values, Tensor) or indices.ndim != 2 or \
            indices.shape != values.shape or torch.is_floating_point(indices) or not torch.is_floating_point(values):
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (indices, values)]
        raise ValueError(f"Expected integer `indices` and float `values` of one shape [K, N] but got {shapes}.")
    k = indices.shape[0]
    if k < 2 or indices.shape[1] < 1 or bool((indices < 0).any() | (indices >= k).any()):
        raise ValueError(f"Expected class ids in [0, {k}) in a table of at least 2 rows and 1 column but got shape "
                         f"{tuple(indices.shape)} and ids in [{int(indices.min())}, {int(indices.max())}].")
    v = values.detach().to("cpu", torch.float32)
    too_much = v.double().sum(-1) > 1 + checks.ROW_SUM_ATOL
    if not bool(torch.isfinite(v).all()) or bool((v < 0).any()) or bool(too_much.any()):
        raise ValueError("Expected finite non-negative top-N values with row sums <= 1 but got others; re-save the "
                         "table from the loss.")
    return indices.detach().to("cpu", torch.long).clone(), v.clone()


class RelationTopK(RelationArtifact):
    """The N largest entries of each row of R, with the label names: the artifact of sparse losses at large K.

    Args:
        indices: [K, N] class ids of each row's related classes.
        values: [K, N] their probabilities in R (the tail mass, 1 - row sum, is uniform over the other classes).
        label_names: K unique class names, in row order.
        include_self: Whether the tail covers the row's own class (False for LS++, whose diagonal is 0).
        **metadata: The metadata fields of `RelationArtifact` (``method``, ``alpha``, ...).
    """

    tensor_file = TOPK_FILE
    kind = "topk"

    def __init__(self, indices: Tensor, values: Tensor, label_names: Sequence[str], *, include_self: bool = True,
                 **metadata: Any) -> None:
        self.indices, self.values = check_topk(indices, values)
        self.include_self = bool(include_self)
        super().__init__(label_names, self.indices.shape[0], **metadata)

    @property
    def top_n(self) -> int:
        """N, the number of stored classes per row."""
        return int(self.indices.shape[1])

    @classmethod
    def from_loss(cls, loss: Any, label_names: Sequence[str], **metadata: Any) -> "RelationTopK":
        """Take the top-N table of a sparse `RelationLoss` (`relation_topk()`)."""
        indices, values = loss.relation_topk()
        fields = cls.fields_from_loss(loss, metadata)
        return cls(indices, values, label_names, include_self=loss.spec.logits_kind != "masked_softmax", **fields)

    def tensors(self) -> dict[str, Tensor]:
        return {"indices": self.indices, "values": self.values}

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "top_n": self.top_n, "include_self": self.include_self}

    @classmethod
    def from_files(cls, config: dict[str, Any], tensors: dict[str, Tensor], path: Path) -> "RelationTopK":
        return cls(tensors["indices"], tensors["values"], config["label_names"],
                   include_self=bool(config.get("include_self", True)), **cls.fields_from_config(config))

    def rows(self, classes: Tensor) -> Tensor:
        """Dense rows R[classes] [B, K] (float32): the stored entries plus the uniform tail."""
        return topk_rows(self.indices.to(classes.device), self.values.to(classes.device), classes, self.include_self)

    def top_related(self, k: int = 3, include_self: bool = False) -> list[list[tuple[str, float]]]:
        """For every class, its `k` most related stored classes as ``(name, probability)``, highest first."""
        out = []
        for row, (ids, vals) in enumerate(zip(self.indices.tolist(), self.values.tolist())):
            pairs = sorted(((v, j) for j, v in zip(ids, vals) if include_self or j != row), reverse=True)[:k]
            out.append([(self.label_names[j], float(v)) for v, j in pairs])
        return out

    def uniform_rows(self) -> list[bool]:
        """Per class, whether its stored entries (self excluded) and its tail share one value (no learned relation)."""
        k = self.num_classes
        is_self = self.indices == torch.arange(k)[:, None]
        high = self.values.masked_fill(is_self, float("-inf")).amax(-1)
        low = self.values.masked_fill(is_self, float("inf")).amin(-1)
        free = k - self.top_n - (0 if self.include_self else 1)
        if free > 0:
            tail = (1.0 - self.values.double().sum(-1)).clamp_min(0).float() / free
            high, low = torch.maximum(high, tail), torch.minimum(low, tail)
        return ((high - low) <= UNIFORM_ATOL).tolist()

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """No heatmap for a top-N table (K is too large to draw); returns None."""
        return None
