"""How a matrix (or a student of a fixed matrix) was trained, beyond the loss: the artifact's ``training`` field.

Two runs that differ only in the matrix's learning rate, refresh period, top-N or optimizer, or in the prior a
student learned from, must be told apart from their files: every integration records these here, in one shape.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..optim import is_sgd_like

if TYPE_CHECKING:  # the card side (root_card) reads this module's marks: no artifact import at run time
    from .artifact import RelationArtifact

logger = logging.getLogger(__name__)
LOCAL_MARK = " (local)"
SCRATCH_MARK = "none: trained from scratch"  # a source that says no pretrained weights were loaded (scripts)


def describe_source(value: str | os.PathLike | None) -> str | None:
    """A Hub id as given; an existing local path as its folder name marked local (``"digits (local)"``): never an
    absolute path, and never mistaken for a Hub id (`card_text.hub_id` refuses the mark)."""
    if value is None or not str(value):
        return None
    path = Path(value).expanduser()
    if not path.exists():
        return str(value)
    return f"{path.resolve().name}{LOCAL_MARK}"


def content_sha256(artifact: RelationArtifact) -> str:
    """sha256 of the artifact's tensors (names, dtypes, shapes, values in name order): the same matrix gives the same
    digest wherever and however it was saved (safetensors files are not byte-stable: their metadata order varies)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(artifact.tensors().items()):
        tensor = tensor.detach().contiguous().cpu()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def prior_record(source: str | None, artifact: RelationArtifact) -> dict[str, Any]:
    """``{"source": repo id or folder, "sha256": ..., "method": ...}`` of the fixed matrix a student learns from."""
    return {"source": source, "sha256": content_sha256(artifact), "method": artifact.method}


def load_prior(source: str | os.PathLike, label_names: Sequence[str]) -> tuple[RelationArtifact, dict[str, Any]]:
    """Load the fixed matrix of a ``relation_prior`` student, check its classes, log what was loaded.

    Returns:
        The artifact and its `prior_record` (for the student's config, card and log).

    Raises:
        ValueError: The matrix's label names differ from `label_names` (naming the fix).
    """
    from .save import load_relations

    matrix = load_relations(source)
    matrix.check_label_names(list(label_names))
    record = prior_record(describe_source(source), matrix)
    logger.info("hf_labelsmooth: relation_prior learns from the %s matrix %s (K=%d, sha256 %s)",
                   matrix.method or "unknown", record["source"], matrix.num_classes, record["sha256"][:16])
    return matrix, record


def relation_group(optimizer: torch.optim.Optimizer | None, loss: Any) -> dict[str, Any] | None:
    """The param group of `optimizer` that holds the loss's parameters (its learnable matrix), if any."""
    params = {id(p) for p in loss.parameters()} if hasattr(loss, "parameters") else set()
    groups = optimizer.param_groups if optimizer is not None and params else []
    return next((g for g in groups if any(id(p) in params for p in g["params"])), None)


def training_record(loss: Any, optimizer: torch.optim.Optimizer | None = None, update_every: int | None = None,
                    prior: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """The ``training`` field of an artifact (and of a student's config) for `loss` trained with `optimizer`.

    Args:
        loss: The `RelationLoss`.
        optimizer: The optimizer holding the loss's parameters (the network's with a param group, or its own).
        update_every: Refresh period in steps, for a method that has one (None: each epoch).
        prior: `prior_record` of a fixed matrix (``relation_prior``).
        **more: Further entries (e.g. ``initialization``), kept when not None.

    Returns:
        ``optimizer`` (class and family), ``relation_lr`` and ``relation_weight_decay`` of a learnable matrix,
        ``update_every`` for a method with a period, ``top_n`` for a sparse loss, ``prior``.
    """
    record: dict[str, Any] = {}
    group = relation_group(optimizer, loss)
    if group is not None and optimizer is not None:
        family = "SGD-like" if is_sgd_like(optimizer) else "Adam-like"
        record.update(optimizer=f"{type(optimizer).__name__} ({family})",
                      relation_lr=float(group.get("initial_lr", group["lr"])),
                      relation_weight_decay=float(group.get("weight_decay", 0.0)))
    top_n = getattr(loss, "top_n", None)
    spec = getattr(loss, "spec", None)
    if spec is not None and spec.has_update_period(top_n):
        record["update_every"] = update_every
    if top_n is not None:
        record["top_n"] = int(top_n)
    if prior is not None:
        record["prior"] = prior
    return {**record, **{k: v for k, v in more.items() if v is not None}}
