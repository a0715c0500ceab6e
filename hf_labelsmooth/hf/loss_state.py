"""Loss state across processes and checkpoints: gradient averaging, consolidation, safetensors save/load, stats."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..losses.base import RelationLoss

LOSS_STATE_FILE = "relation_loss.safetensors"
MATRIX_FILE = "relation_matrix.safetensors"
MATRIX_DIR = "relation_matrix"


def _world() -> tuple[int, int]:
    """(rank, world size) of the running torch.distributed group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(loss: RelationLoss) -> None:
    """All-reduce (mean) the gradients of the loss's own parameters so every process steps identically."""
    _, world = _world()
    if world == 1:
        return
    for param in loss.parameters():
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(world)


def zero_gradients(loss: RelationLoss) -> None:
    """Drop the gradients of the loss's parameters (the Trainer only zeroes the model's)."""
    for param in loss.parameters():
        param.grad = None


def save_loss_state(loss: RelationLoss, directory: str | os.PathLike) -> Path:
    """Write `loss.state_dict()` to ``relation_loss.safetensors`` (atomically) in `directory`."""
    path = Path(directory) / LOSS_STATE_FILE
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in loss.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"method": loss.name, "alpha": str(loss.alpha)})
    os.replace(tmp, path)
    return path


def load_loss_state(loss: RelationLoss, directory: str | os.PathLike) -> bool:
    """Restore the loss from ``relation_loss.safetensors`` in `directory`; False when the file is absent.

    Per-process statistics are kept on rank 0 only (see `RelationLoss.consolidate_states`).
    """
    path = Path(directory) / LOSS_STATE_FILE
    if not path.is_file():
        return False
    state = load_file(str(path))
    device = next(iter(loss.state_dict().values()), torch.empty(0)).device
    loss.load_state_dict({k: v.to(device) for k, v in state.items()})
    loss.keep_states_on_rank_zero()
    return True


def matrix_stats(matrix: Tensor) -> dict[str, float]:
    """Mean row entropy (nats) and mean off-diagonal mass of a row-stochastic matrix."""
    m = matrix.detach().float().cpu()
    entropy = -(m * m.clamp_min(1e-12).log()).sum(-1).mean()
    off_diagonal = (1.0 - m.diagonal()).mean()
    return {"relation_entropy": float(entropy), "relation_offdiag_mass": float(off_diagonal)}


def write_relation_matrix(loss: RelationLoss, label_names: Sequence[str], directory: str | os.PathLike,
                          **metadata) -> Path:
    """Write the final matrix next to a saved model.

    ``relation_matrix.safetensors`` (tensor ``relation_matrix``; label names, method and alpha in its metadata)
    goes beside the model files; the full `ClassRelationMatrix` artifact (with its own config.json and card, so
    that it cannot clobber the model's) goes to the ``relation_matrix/`` subfolder, loadable with
    ``ClassRelationMatrix.from_pretrained(dir / "relation_matrix")`` or ``--relation_matrix``. A sparse loss
    with K above `DENSE_MATRIX_LIMIT` writes ``relation_matrix/relation_topk.safetensors`` instead.
    """
    from ..relation_matrix import ClassRelationMatrix
    from ..relation_topk import needs_topk_artifact, write_relation_topk

    directory = Path(directory)
    if needs_topk_artifact(loss):  # sparse loss above the dense size: its top-N table instead
        return write_relation_topk(loss, label_names, directory / MATRIX_DIR, **metadata)
    artifact = ClassRelationMatrix.from_loss(loss, label_names=list(label_names), **metadata)
    artifact.save_pretrained(directory / MATRIX_DIR)
    flat = directory / MATRIX_FILE
    tmp = flat.with_suffix(".tmp")
    info = {"method": loss.name, "alpha": str(loss.alpha), "label_names": json.dumps(list(label_names))}
    save_file({"relation_matrix": artifact.matrix.contiguous()}, str(tmp), metadata=info)
    os.replace(tmp, flat)
    return flat
