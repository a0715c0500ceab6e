"""Relations of sparse losses too large for a dense K×K artifact: the per-row top-N table, as safetensors."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from torch import nn

from .losses._sparse import DENSE_MATRIX_LIMIT
from .relation_io import write_tensors

TOPK_FILE = "relation_topk.safetensors"


def needs_topk_artifact(loss: nn.Module) -> bool:
    """True for a sparse (`top_n`) loss whose K is above the size where a dense relation matrix is built."""
    return getattr(loss, "top_n", None) is not None and getattr(loss, "num_classes", 0) > DENSE_MATRIX_LIMIT


def write_relation_topk(loss: nn.Module, label_names: Sequence[str], directory: str | os.PathLike,
                        **metadata: object) -> Path:
    """Write ``relation_topk.safetensors``: tensors ``indices`` [K, N] (class ids) and ``values`` [K, N]
    (their probabilities in R, the tail left out), with method, alpha and label names in its metadata (atomic).

    Args:
        loss: A sparse relation loss (`top_n` set).
        label_names: Class names in label-index order (K of them).
        directory: Output directory, created if missing.
        **metadata: Extra string-able fields (source model, epochs, …).
    """
    if len(label_names) != loss.num_classes:
        raise ValueError(f"Expected {loss.num_classes} label names for the relation table but got "
                         f"{len(label_names)}.")
    indices, values = loss.relation_topk()
    info = {"method": loss.name, "alpha": str(loss.alpha), "top_n": str(loss.top_n),
            "label_names": json.dumps(list(label_names)), **{k: str(v) for k, v in metadata.items()}}
    path = Path(directory) / TOPK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tensors(path, {"indices": indices.contiguous().cpu(), "values": values.float().contiguous().cpu()}, info)
    return path
