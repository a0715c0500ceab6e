"""Digests of tensors: what a checkpoint file records about its own content, checked when it is read back.

The sha256 covers each tensor's name, dtype, shape and bytes, in sorted name order, so it depends on the tensors and
not on how a file lays them out (safetensors' header order, metadata).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def tensors_digest(tensors: dict[str, Tensor]) -> str:
    """sha256 hex digest of `tensors` (names, dtypes, shapes and bytes, in sorted name order)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{value.dtype}\0{tuple(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
