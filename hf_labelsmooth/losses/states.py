"""Cross-process loss state, in the style of torchmetrics' ``Metric.add_state``: how each state is reduced.

A loss declares every buffer that differs per process with `RelationLoss.add_state` and a reduction: ``"sum"``
(all-reduced) or a callable that merges the per-process values (`sparse.tables.merge_top_tables` for the sparse
per-row top-M tables: OLS accumulator, LS++/LLS candidates). `process_group` is the one place that asks
torch.distributed whether a process group is running; the losses, integrations and scripts all use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.distributed as dist
from torch import Tensor

Merge = Callable[[list[tuple[Tensor, ...]]], tuple[Tensor, ...]]
Reduction = Union[str, Merge]


def process_group() -> tuple[int, int] | None:
    """(rank, world size) of the running torch.distributed default process group, or None when none is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def world_size() -> int:
    """Number of processes of the running process group (1 without one)."""
    group = process_group()
    return 1 if group is None else group[1]


@dataclass(frozen=True)
class StateSpec:
    """A declared state: its buffer names, the constant each is reset to (the reduction's identity), its reduction."""

    names: tuple[str, ...]
    fills: tuple[float | int | bool, ...]
    reduction: Reduction


def check_state(names: tuple[str, ...], defaults: tuple[Tensor, ...], reduction: Reduction) -> StateSpec:
    """Validate a declaration: one constant default per name (its identity) and a known reduction."""
    if len(names) != len(defaults) or not names:
        raise ValueError(f"Expected one default per state name but got names {names} and {len(defaults)} defaults.")
    if not (reduction == "sum" or callable(reduction)):
        raise ValueError(f"Expected `dist_reduce_fx` to be 'sum' or a callable but got {reduction!r}.")
    fills = []
    for name, default in zip(names, defaults):
        fill = default.flatten()[0].item() if default.numel() else 0
        if not bool((default == fill).all()):
            raise ValueError(f"Expected a constant default for state {name!r} (the identity of its reduction, e.g. "
                             "zeros for 'sum') but got a tensor with different entries.")
        fills.append(fill)
    return StateSpec(names, tuple(fills), reduction)


def reduce_state(tensors: tuple[Tensor, ...], reduction: Reduction, size: int) -> None:
    """Replace `tensors` in place by their reduction over the `size` processes of the default group (collective).

    ``"sum"`` all-reduces. A callable gets every process's tensors in rank order (the same input on every rank)
    and its result, computed on every rank, is broadcast from rank 0, so every process holds the same bits even
    where the merge's kernels are not deterministic.
    """
    if reduction == "sum":
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return
    assert callable(reduction)  # `check_state` admits "sum" or a merge callable
    gathered = []
    for tensor in tensors:
        parts = [torch.empty_like(tensor) for _ in range(size)]
        dist.all_gather(parts, tensor.contiguous())
        gathered.append(parts)
    merged = reduction([tuple(parts[rank] for parts in gathered) for rank in range(size)])
    for tensor, value in zip(tensors, merged):
        tensor.copy_(value)
        dist.broadcast(tensor, src=0)
