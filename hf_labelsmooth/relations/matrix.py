"""`ClassRelationMatrix`: a learned K×K class-relation matrix with its label names, as a Hub artifact.

Files written by `save_pretrained` (docs/format.md): ``relation_matrix.safetensors`` (tensor ``relation_matrix``,
and ``logits`` for LLS / LS++ so that `subset` can re-apply the softmax), ``config.json`` (label names and
metadata), ``README.md`` (model card) and ``relation_matrix.png`` (heatmap). Loading reads only the safetensors and
JSON files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from . import checks
from .artifact import RelationArtifact
from .constants import MATRIX_FILE

UNIFORM_ATOL = 1e-6  # a row whose off-diagonal entries differ by less is uniform (no learned relation)


class ClassRelationMatrix(RelationArtifact):
    """A K×K row-stochastic class-relation matrix R (row y: where smoothing sends the mass of class y).

    Args:
        matrix: K×K row-stochastic tensor (validated, stored float32 on CPU).
        label_names: K unique class names, in row order.
        method: Loss that produced R (``"ols"``, ``"lspp"``, ``"lls"``, ...).
        alpha: Mass moved off the one-hot in training (the same meaning for every method).
        source_model: Model (Hub id or name) trained with the loss.
        dataset: Dataset the matrix was learned on.
        epochs: Number of training epochs.
        logits: Optional K×K relation logits (LLS Q or LS++ C); `subset` re-softmaxes them.
        logits_kind: ``"softmax"`` (LLS) or ``"masked_softmax"`` (LS++, diagonal excluded); required with logits.
        extra: Further JSON-serialisable metadata (kept in config.json under ``"extra"``).
    """

    tensor_file = MATRIX_FILE
    kind = "matrix"

    def __init__(self, matrix: Tensor, label_names: Sequence[str], *, logits: Tensor | None = None,
                 logits_kind: str | None = None, **metadata: Any) -> None:
        self.matrix = checks.check_matrix(matrix)
        self.logits = None if logits is None else checks.check_logits(logits, self.matrix, logits_kind)
        self.logits_kind = logits_kind if logits is not None else None
        super().__init__(label_names, self.matrix.shape[0], **metadata)

    @classmethod
    def from_loss(cls, loss: Any, label_names: Sequence[str], **metadata: Any) -> "ClassRelationMatrix":
        """Take R (and, for LLS / LS++, the raw logits) from a `RelationLoss`.

        Args:
            loss: A `RelationLoss` (or any object with `relation_matrix()`; `name` and `alpha` are read if present).
            label_names: Class names in the order of the model's outputs.
            **metadata: ``source_model``, ``dataset``, ``epochs``, ``method``/``alpha`` overrides; other keys go
                to ``extra``.
        """
        kind = getattr(loss, "logits_kind", None)
        dense = getattr(loss, "top_n", None) is None  # sparse losses hold K×N slot logits: store R alone
        logits = getattr(loss, "logits", None) if kind and dense else None
        if isinstance(logits, Tensor):
            logits = logits.detach().float().cpu()
        else:
            logits, kind = None, None
        return cls(loss.relation_matrix(), label_names, logits=logits, logits_kind=kind,
                   **cls.fields_from_loss(loss, metadata))

    def tensors(self) -> dict[str, Tensor]:
        tensors = {"relation_matrix": self.matrix}
        if self.logits is not None:
            tensors["logits"] = self.logits
        return tensors

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "logits_kind": self.logits_kind}

    @classmethod
    def from_files(cls, config: dict[str, Any], tensors: dict[str, Tensor], path: Path) -> "ClassRelationMatrix":
        return cls(tensors["relation_matrix"], config["label_names"], logits=tensors.get("logits"),
                   logits_kind=config.get("logits_kind"), **cls.fields_from_config(config))

    def subset(self, label_names: Sequence[str]) -> "ClassRelationMatrix":
        """R restricted to `label_names` (in that order; docs/methods.md "lls", subset transfer).

        With stored logits the sub-block of logits is re-softmaxed; otherwise the sub-block's rows are
        renormalised. A row left with no mass becomes uniform over the other kept classes (with a warning).
        """
        names = checks.check_label_names(label_names, len(label_names))
        missing = [n for n in names if n not in self.label_names]
        if missing or len(names) < 2:
            raise ValueError(f"Expected at least 2 label names from {self.label_names[:20]} but got {names[:20]} "
                             f"(unknown: {missing[:8]}).")
        idx = torch.tensor([self.label_names.index(n) for n in names])
        logits = None if self.logits is None else self.logits[idx][:, idx]
        if logits is not None:
            assert self.logits_kind is not None  # stored logits always carry their kind (`check_logits`)
            matrix = checks.softmax_logits(logits, self.logits_kind)
        else:
            matrix = checks.renormalise_rows(self.matrix[idx][:, idx])
        fields = {**self.fields_from_config(self.to_config()), "extra": {**self.extra, "subset_of": self.num_classes}}
        return type(self)(matrix, names, logits=logits, logits_kind=self.logits_kind, **fields)

    def top_related(self, k: int = 3, include_self: bool = False) -> list[list[tuple[str, float]]]:
        """For every class, its `k` most related classes as ``(name, probability)``, highest first."""
        m = self.matrix.clone()
        if not include_self:
            m.fill_diagonal_(float("-inf"))
        k = min(k, self.num_classes - (0 if include_self else 1))
        values, indices = m.topk(k, dim=-1)
        return [[(self.label_names[j], float(v)) for v, j in zip(vs.tolist(), js.tolist())]
                for vs, js in zip(values, indices)]

    def uniform_rows(self) -> list[bool]:
        """Per class, whether every other class gets the same mass in its row (no learned relation)."""
        off_diagonal = torch.eye(self.num_classes, dtype=torch.bool)
        high = self.matrix.masked_fill(off_diagonal, float("-inf")).amax(-1)
        low = self.matrix.masked_fill(off_diagonal, float("inf")).amin(-1)
        return ((high - low) <= UNIFORM_ATOL).tolist()

    def plot(self, path: str | os.PathLike | None = None):
        """Heatmap of R via `hf_labelsmooth.relations.plot.plot_relation_matrix` (diagonal hidden)."""
        from .plot import plot_relation_matrix

        title = f"Class-relation matrix ({self.method})" if self.method else "Class-relation matrix"
        return plot_relation_matrix(self.matrix, self.label_names, path, title=title)
