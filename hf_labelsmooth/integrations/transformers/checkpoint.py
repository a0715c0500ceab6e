"""Loss state across processes and Trainer checkpoints: gradient averaging and safetensors save/load."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file

from ...losses.base import RelationLoss
from ...losses.states import world_size
from ..._io import write_tensors

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


def checkpoint_method(checkpoint: str | os.PathLike) -> str | None:
    """The method recorded in a checkpoint's ``relation_loss.safetensors`` (None without the file)."""
    path = Path(checkpoint) / LOSS_STATE_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as handle:
        return (handle.metadata() or {}).get("method")


def check_resumable(checkpoint: str | os.PathLike, method: str, loss: RelationLoss | None = None) -> None:
    """Raise, before any work, when `checkpoint` was not written by a `method` run (with `loss`'s state shapes).

    Resuming another method's checkpoint would fail deep in the optimizer ("different number of parameter
    groups") or silently mix two losses.

    Raises:
        ValueError: Naming the checkpoint's method and the fixes.
    """
    path = Path(checkpoint) / LOSS_STATE_FILE
    fix = (f"Train into a new --output_dir, delete the checkpoint-* folders of {Path(checkpoint).parent}, or resume "
           f"with that run's --label_smoothing_method.")
    found = checkpoint_method(checkpoint)
    if found is None:
        if loss is not None and loss.requires_optimizer:
            raise ValueError(f"Expected {path} to resume the {method!r} loss (its matrix is trained) but got "
                             f"no such file: the checkpoint was not written by LabelSmoothingTrainer. {fix}")
        return
    if found != method:
        raise ValueError(f"Expected checkpoint {checkpoint} to come from a {method!r} run but it holds the loss "
                         f"state of a {found!r} run. {fix}")
    if loss is not None:
        with safe_open(str(path), "pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        expected = {key: tuple(value.shape) for key, value in loss.state_dict().items()}
        if shapes != expected:
            raise ValueError(f"Expected the {method!r} loss state {expected} in {path} but got {shapes} (another "
                             f"number of classes or --relation_top_n). {fix}")

