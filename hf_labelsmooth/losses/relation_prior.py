"""Relation prior: cross-entropy against fixed targets built from a given class-relation matrix (LLS-ST, PT-LS++)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .base import RelationLoss
from .checks import check_tensor
from .functional import topk_rows
from .kernels.fused_ce import smoothed_cross_entropy
from .kernels.fused_soft import soft_cross_entropy, soft_targets
from .registry import MethodSpec, register_loss


def _as_matrix(matrix: Any, num_classes: int) -> Tensor:
    """Take the K×K tensor from a Tensor or any object with a `.matrix` tensor, and validate it."""
    tensor = getattr(matrix, "matrix", matrix)
    if not isinstance(tensor, Tensor):
        raise ValueError("Expected `matrix` to be a K×K torch.Tensor or an object with a `.matrix` tensor (e.g. "
                         f"ClassRelationMatrix.from_pretrained(...)) but got {type(matrix).__name__}.")
    if tuple(tensor.shape) != (num_classes, num_classes) or not torch.is_floating_point(tensor):
        raise ValueError(f"Expected a floating-point relation matrix of shape ({num_classes}, {num_classes}) but got "
                         f"{tuple(tensor.shape)} ({tensor.dtype}). Build the loss with num_classes equal to the "
                         "matrix's K, or take matrix.subset(dataset_label_names).")
    check_tensor(tensor, "stochastic", "matrix", "the matrix given to relation_prior (a file or tensor; normalise "
                 "its rows with m / m.sum(-1, keepdim=True))")
    return tensor.detach().float().clone()


@register_loss(MethodSpec(name="relation_prior", default_alpha=0.1, requires_matrix=True))
class RelationPrior(RelationLoss):
    """Fixed targets t = (1-α)·e_y + α·M[y] from a given matrix M, loss H(t, p) = -Σ_k t_k log p_k.

    This is how a learned matrix is reused as a teacher-free prior: LLS-ST (LLS Sec. 5.3, β = 0, T = 1) and
    PT-LS++ (LS++ Sec. 5.3) train a student with plain CE against these targets. Soft targets t₀ (Mixup)
    become (1-α)·t₀ + α·t₀ @ M. M is a buffer: nothing to optimise.

    Args:
        num_classes: K; must match the matrix.
        alpha: Weight of the prior. Default 0.1 (the α of both source methods, docs/methods.md); α = 1 uses M[y] alone.
        matrix: K×K row-stochastic tensor, an object with `.matrix` (e.g. a `ClassRelationMatrix`), or a top-N
            table with `.indices` / `.values` (a `RelationTopK`, for large K: rows are built per batch).
        label_names: Optional dataset label names; when given and `matrix` has `check_label_names`, they are
            checked against the matrix's names (a ValueError naming the fix on mismatch).
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    dense_hard_targets = False
    matrix: Tensor | None  # buffer: the K×K prior, or None with a top-N table
    top_indices: Tensor  # buffers of a top-N table (set when `matrix` is None)
    top_values: Tensor

    def __init__(self, num_classes: int, alpha: float | None = None, matrix: Any = None,
                 label_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        if matrix is None:
            raise ValueError("Expected a `matrix` (K×K tensor or ClassRelationMatrix) for 'relation_prior' but got "
                             "None. Pass matrix=ClassRelationMatrix.from_pretrained(path_or_repo).")
        if label_names is not None and hasattr(matrix, "check_label_names"):
            matrix.check_label_names(label_names)
        self.include_self = bool(getattr(matrix, "include_self", True))
        if isinstance(getattr(matrix, "indices", None), Tensor):  # a top-N table (RelationTopK), for large K
            self._check_table(matrix.indices, matrix.values)
            check_tensor(matrix.values, "probability", "values", "the top-N table given to relation_prior")
            self.register_buffer("top_indices", matrix.indices.detach().long().clone())
            self.register_buffer("top_values", matrix.values.detach().float().clone())
            self.matrix = None
        else:
            self.register_buffer("matrix", _as_matrix(matrix, self.num_classes))
        self.expect("matrix", "stochastic")
        self.expect("top_values", "probability")
        self.label_names = list(getattr(matrix, "label_names", None) or label_names or []) or None

    def _check_table(self, indices: Tensor, values: Tensor) -> None:
        if tuple(indices.shape)[:1] != (self.num_classes,) or indices.shape != values.shape:
            raise ValueError(f"Expected a top-N table with {self.num_classes} rows but got indices "
                             f"{tuple(indices.shape)} and values {tuple(values.shape)}. Build the loss with "
                             "num_classes equal to the table's K.")

    def relation_rows(self, classes: Tensor) -> Tensor:
        if self.matrix is None:
            return topk_rows(self.top_indices, self.top_values, classes, self.include_self)
        return self.matrix[classes]

    def _read_rows(self, classes: Tensor) -> Tensor:
        """M[classes] as the loss reads them: checked to be distributions (with `check_inputs`)."""
        return self.checked_rows(self.relation_rows(classes), classes, "matrix")

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        if labels is not None:  # fused: t = (1-α)·e_y + α·M[y] never built, one softmax (as OLS)
            return smoothed_cross_entropy(logits, labels, self.alpha, self._read_rows(labels))[0]
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        t = soft_targets(target, self._read_rows, self.alpha, dense=self.matrix is not None)
        return soft_cross_entropy(logits, t)[0]  # fused

    def relation_matrix(self) -> Tensor:
        if self.matrix is None:
            return self.relation_rows(torch.arange(self.num_classes, device=self.top_indices.device))
        return self.matrix.detach().float().clone()
