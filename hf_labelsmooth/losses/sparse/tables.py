"""Per-row top-M tables (class index [K, M], value [K, M]; index -1 = empty): the sparse OLS accumulator and the
LS++/LLS candidate tables. `merge_into` adds entries on one process; `merge_top_tables` is their cross-process
reduction (``add_state(..., dist_reduce_fx=merge_top_tables)``).
"""
from __future__ import annotations

import torch
from torch import Tensor


def merge_into(index: Tensor, values: Tensor, rows: Tensor, cols: Tensor, vals: Tensor) -> Tensor:
    """Add entries (rows, cols, vals) to per-row tables `index`/`values` [K, M] in place, keeping the M largest.

    Empty slots hold index -1 and value 0. Returns the mass [K] of the entries that did not fit (per row).
    """
    num_rows, width = index.shape
    dropped = torch.zeros(num_rows, dtype=values.dtype, device=values.device)
    if rows.numel() == 0:
        return dropped
    touched = rows.unique()
    old_i, old_v = index[touched], values[touched]
    valid = old_i >= 0
    all_rows = torch.cat([touched[:, None].expand_as(old_i)[valid], rows])
    cols_all = torch.cat([old_i[valid], cols])
    num_cols = int(cols_all.max()) + 1
    keys, inverse = (all_rows * num_cols + cols_all).unique(return_inverse=True)
    summed = torch.zeros(len(keys), dtype=values.dtype, device=values.device).index_add_(
        0, inverse, torch.cat([old_v[valid], vals]))
    order = summed.argsort(descending=True, stable=True)
    order = order[(keys[order] // num_cols).argsort(stable=True)]  # by row, then by value (descending)
    key_rows, key_cols, summed = keys[order] // num_cols, keys[order] % num_cols, summed[order]
    rank = torch.arange(len(keys), device=keys.device) - torch.searchsorted(key_rows, key_rows)
    keep = rank < width
    dropped.index_add_(0, key_rows[~keep], summed[~keep])
    index[touched], values[touched] = -1, 0.0
    index[key_rows[keep], rank[keep]] = key_cols[keep]
    values[key_rows[keep], rank[keep]] = summed[keep]
    return dropped


def merge_top_tables(parts: list[tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """Merge per-process per-row tables (index [K, M], values [K, M][, dropped [K]]) into one, in a single pass.

    Entries are summed per (row, class) over all processes and each row keeps its M largest (ties by class id),
    so the result does not depend on which process merges nor on the order of the processes. The mass that does
    not fit is added to ``dropped`` when the table has one (the sparse OLS accumulator), else discarded
    (LS++/LLS candidates). Index -1 marks an empty slot.
    """
    index, values = torch.full_like(parts[0][0], -1), torch.zeros_like(parts[0][1])
    all_index = torch.cat([part[0] for part in parts], dim=1)
    all_values = torch.cat([part[1] for part in parts], dim=1)
    valid = all_index >= 0
    rows = torch.arange(len(index), device=index.device)[:, None].expand_as(all_index)[valid]
    overflow = merge_into(index, values, rows, all_index[valid], all_values[valid])
    if len(parts[0]) == 2:
        return index, values
    return index, values, torch.stack([part[2] for part in parts]).sum(dim=0) + overflow
