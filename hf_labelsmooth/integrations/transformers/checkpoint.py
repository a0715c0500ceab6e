"""Loss state across processes and Trainer checkpoints: gradient averaging and safetensors save/load."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from ...losses.base import RelationLoss
from ...losses.states import world_size
from ...relations.io import write_tensors

LOSS_STATE_FILE = "relation_loss.safetensors"


def average_gradients(loss: RelationLoss) -> None:
    """All-reduce (mean) the gradients of the loss's own parameters so every process steps identically."""
    world = world_size()
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
    write_tensors(path, tensors, {"method": loss.name, "alpha": str(loss.alpha)})
    return path


def load_loss_state(loss: RelationLoss, directory: str | os.PathLike) -> bool:
    """Restore the loss from ``relation_loss.safetensors`` in `directory`; False when the file is absent.

    The file holds the global value of every declared state (`RelationLoss.consolidate_states` ran before the save);
    ranks other than 0 reset theirs (`keep_states_on_rank_zero`), so the global state is counted once.
    """
    path = Path(directory) / LOSS_STATE_FILE
    if not path.is_file():
        return False
    state = load_file(str(path))
    device = next(iter(loss.state_dict().values()), torch.empty(0)).device
    loss.load_state_dict({k: v.to(device) for k, v in state.items()})
    loss.keep_states_on_rank_zero()
    return True
