"""Validation of class-relation artifacts: shapes, values, label names and stored logits, with errors naming the fix."""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Sequence

import torch
from torch import Tensor

ROW_SUM_ATOL = 1e-4
LOGITS_KINDS = ("softmax", "masked_softmax")


def check_matrix(matrix: Any, name: str = "relation matrix") -> Tensor:
    """Return `matrix` as a detached float32 CPU tensor after checking it is K×K, finite, ≥ 0, rows summing to 1.

    Raises:
        ValueError: Naming the first offending property and rows.
    """
    if not isinstance(matrix, Tensor):
        raise ValueError(f"Expected the {name} to be a torch.Tensor but got {type(matrix).__name__}.")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"Expected the {name} to be a square K×K tensor with K >= 2 but got shape "
                         f"{tuple(matrix.shape)}.")
    if not torch.is_floating_point(matrix):
        raise ValueError(f"Expected the {name} to hold floating-point values but got dtype {matrix.dtype}.")
    m = matrix.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(m).all()):
        rows = (~torch.isfinite(m)).any(-1).nonzero().flatten()[:8].tolist()
        raise ValueError(f"Expected a finite {name} but got NaN/inf in rows {rows}.")
    if bool((m < 0).any()):
        rows = (m < 0).any(-1).nonzero().flatten()[:8].tolist()
        raise ValueError(f"Expected a non-negative {name} but got negative entries in rows {rows}.")
    sums = m.double().sum(-1)
    bad = ((sums - 1).abs() > ROW_SUM_ATOL).nonzero().flatten()[:8].tolist()
    if bad:
        raise ValueError(
            f"Expected every row of the {name} to sum to 1 (±{ROW_SUM_ATOL}) but got sums {sums[bad].tolist()} "
            f"in rows {bad}. Normalise the rows (m / m.sum(-1, keepdim=True))."
        )
    return m.clone()


def check_label_names(label_names: Any, num_classes: int) -> list[str]:
    """Return the names as a list after checking they are `num_classes` unique strings."""
    if isinstance(label_names, (str, bytes)) or not isinstance(label_names, Sequence):
        raise ValueError(f"Expected `label_names` to be a list of {num_classes} strings but got {label_names!r}.")
    names = list(label_names)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise ValueError(f"Expected {num_classes} label names (strings), one per row, but got {len(names)}: "
                         f"{names[:8]}.")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)  # O(K): K may be large
    if duplicates:
        raise ValueError(f"Expected unique label names but got duplicates {duplicates[:8]}.")
    return names


def check_logits(logits: Tensor, matrix: Tensor, kind: str | None) -> Tensor:
    """Check stored relation logits (K×K, finite) and that their row softmax reproduces `matrix`."""
    if kind not in LOGITS_KINDS:
        raise ValueError(f"Expected `logits_kind` in {LOGITS_KINDS} when logits are stored but got {kind!r}.")
    if not isinstance(logits, Tensor) or logits.shape != matrix.shape or not torch.is_floating_point(logits):
        got = f"{tuple(logits.shape)} ({logits.dtype})" if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"Expected floating-point relation logits of shape {tuple(matrix.shape)} but got {got}.")
    if not bool(torch.isfinite(logits).all()):
        rows = (~torch.isfinite(logits)).any(-1).nonzero().flatten()[:8].tolist()
        raise ValueError(f"Expected finite relation logits but got NaN/inf in rows {rows}; re-save them from the loss.")
    logits = logits.detach().to("cpu", torch.float32).clone()
    if not torch.allclose(softmax_logits(logits, kind), matrix, atol=ROW_SUM_ATOL, rtol=0):
        raise ValueError("Expected the stored logits to reproduce the relation matrix by row softmax but got a "
                         "mismatch: the file is inconsistent; re-save it from the loss.")
    return logits


def softmax_logits(logits: Tensor, kind: str) -> Tensor:
    """Row softmax of relation logits: plain (LLS) or over the off-diagonal classes only (LS++)."""
    if kind == "masked_softmax":
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return logits.softmax(dim=-1)


def renormalise_rows(block: Tensor) -> Tensor:
    """Rows divided by their sums (float64 maths); a row with no mass becomes uniform off the diagonal (warning)."""
    block = block.double()
    empty = block.sum(-1) <= 0
    if bool(empty.any()):
        warnings.warn(f"Rows {empty.nonzero().flatten().tolist()} of the subset have no mass left; using a "
                      "uniform row over the other kept classes.", stacklevel=3)
        block = torch.where(empty[:, None], 1.0 - torch.eye(block.shape[0], dtype=torch.float64), block)
    return (block / block.sum(-1, keepdim=True)).float()
