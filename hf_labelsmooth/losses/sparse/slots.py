"""Helpers of the top-N rows (``top_n=N``): the option's check, slot tables and the K limit of dense matrices.

Every row y keeps N *slots*: class indices ``slots[y]`` (K×N long) with their own weights; the classes outside the
slots (the *tail*) share the rest of the row's mass uniformly. The storages are `storage.TopNLogits` (LS++, LLS) and
`storage.TopNAverages` (OLS).
"""
from __future__ import annotations

import torch
from torch import Tensor

DENSE_MATRIX_LIMIT = 8192  # relation_matrix() of a sparse loss builds K×K only up to this K


def check_top_n(top_n: int | None, num_classes: int, max_n: int) -> int | None:
    """Validate `top_n`: None (dense) or an integer in [1, max_n]."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= max_n:
        raise ValueError(f"Expected `top_n` to be None (dense) or an integer in [1, {max_n}] for num_classes="
                         f"{num_classes} but got {top_n!r}.")
    return top_n


def neighbour_slots(num_classes: int, top_n: int, include_self: bool) -> Tensor:
    """Slots y, y+1, …, y+N-1 (include_self) or y+1, …, y+N (mod K): distinct classes, cheap at any K."""
    offsets = torch.arange(top_n) + (0 if include_self else 1)
    return (torch.arange(num_classes)[:, None] + offsets) % num_classes


def check_slots(slots: Tensor, num_classes: int, top_n: int, include_self: bool) -> Tensor:
    """Validate a K×N slot table: classes in range, distinct in each row, and (LS++) never the row's own class."""
    slots = torch.as_tensor(slots).long()
    if slots.shape != (num_classes, top_n):
        raise ValueError(f"Expected `slot_init` of shape ({num_classes}, {top_n}) but got {tuple(slots.shape)}.")
    rows = torch.arange(num_classes)[:, None]
    sorted_slots = slots.sort(dim=-1).values
    bad = (slots < 0) | (slots >= num_classes) | (not include_self and slots.eq(rows))
    if bool(bad.any()) or bool((sorted_slots[:, 1:] == sorted_slots[:, :-1]).any()):
        raise ValueError("Expected `slot_init` rows of distinct class ids in [0, K)" + ("" if include_self else
                         ", none equal to its row (LS++ excludes the target class)") + " but got a row breaking it.")
    return slots


def scatter_rows(fill: Tensor, index: Tensor, values: Tensor, num_classes: int) -> Tensor:
    """Dense rows [n, K]: `fill` [n] everywhere, then `values` [n, N] at `index` [n, N] (differentiable)."""
    return fill[:, None].expand(len(fill), num_classes).scatter(1, index, values)
