"""Each sample's most probable wrong class, for the sparse slot refresh (`storage.TopNLogits`)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..functional import at


BLOCK = 64  # the wrong-class search takes block maxima in one fast pass, then searches one block per row


def most_probable_wrong(p: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(probability [B], class [B]) of each row's most probable class other than its label (p is left unchanged).

    Block maxima in one fast pass, then a search in the winning block (`max` with indices is a slow pass on CPUs).
    """
    y, num_classes = labels[:, None], p.shape[1]
    p_y = p.gather(1, y)
    p.scatter_(1, y, -1.0)
    full = num_classes // BLOCK * BLOCK
    if full < 32 * BLOCK:
        score, wrong = p.max(dim=-1)
    else:
        cand = torch.cat([p[:, :full].view(len(p), -1, BLOCK).amax(dim=-1), p[:, full:]], dim=1)
        best = cand.argmax(dim=-1, keepdim=True)
        in_block = best < full // BLOCK
        index = torch.where(in_block, best * BLOCK, best + (full - full // BLOCK))
        index = index + torch.arange(BLOCK, device=p.device) * in_block  # the remainder: its column BLOCK times
        score, pos = p.gather(1, index).max(dim=-1)
        wrong = at(index, pos[:, None])
    p.scatter_(1, y, p_y)
    return score, wrong
