"""A top-M table merge with shapes fixed by the batch: traceable by ``torch.compile(fullgraph=True)``, no host sync.

`merge_groups` gives the tables `tables.merge_into` would (same sums, same order, same dropped mass) for entries
that come in groups of one row each (a sample's top-M probabilities for its class, its most probable wrong class),
with a mask instead of boolean indexing: every tensor it builds has a size known from the inputs' shapes alone.
"""
from __future__ import annotations

import torch
from torch import Tensor


def merge_groups(index: Tensor, values: Tensor, rows: Tensor, cols: Tensor, vals: Tensor, valid: Tensor) -> Tensor:
    """Add the groups of entries (rows[g], cols[g, :], vals[g, :]) with `valid[g]` to the tables in place.

    Each touched row's table becomes the M largest of its old entries plus the new ones (summed per class; ties
    by class id), as `tables.merge_into` builds it. Empty slots hold index -1 and value 0.

    Args:
        index: [K, M] class ids per row (-1 = empty); columns are class ids in [0, K).
        values: [K, M] their accumulated values.
        rows: [G] the row of each group.
        cols: [G, W] class ids of each group's entries.
        vals: [G, W] their values.
        valid: [G] bool, False for groups to leave out.

    Returns:
        The mass [K] of the entries that did not fit (per row).
    """
    k, width = index.shape
    groups = rows.shape[0]
    if groups == 0:
        return values.new_zeros(k)
    row_key = torch.where(valid, rows, k)  # left-out groups go to a spare row K
    first = torch.full((k + 1,), groups, dtype=torch.long, device=rows.device)
    first = first.scatter_reduce(0, row_key, torch.arange(groups, device=rows.device), reduce="amin")
    is_first = (first.gather(0, row_key) == torch.arange(groups, device=rows.device)) & valid
    old_i, old_v = index.index_select(0, rows), values.index_select(0, rows)
    ok = torch.cat([is_first[:, None] & (old_i >= 0), valid[:, None].expand_as(cols)], dim=1).reshape(-1)
    entry_rows = rows[:, None].expand(groups, width + cols.shape[1]).reshape(-1)
    keys = torch.where(ok, entry_rows * k + torch.cat([old_i, cols], dim=1).reshape(-1), k * k)
    entries = torch.cat([old_v, vals.to(values.dtype)], dim=1).reshape(-1)
    sums, seg_keys = _sum_by_key(keys, torch.where(ok, entries, 0.0), k * k)  # where, not `* ok`: NaN·0 is NaN
    seg_rows, rank = _rank_in_rows(sums, seg_keys, k)
    keep = (seg_keys < k * k) & (rank < width)
    dropped = sums.new_zeros(k + 1).index_add_(0, seg_rows, torch.where(keep, 0.0, sums))[:k]
    touched = torch.zeros(k + 1, dtype=torch.bool, device=rows.device).index_fill_(0, row_key, True)[:k]
    hit = touched.index_select(0, rows)[:, None]  # groups of one row write the same value: duplicates are harmless
    index.index_put_((rows,), torch.where(hit, -1, old_i))
    values.index_put_((rows,), torch.where(hit, 0.0, old_v))
    slot = torch.where(keep, seg_rows * width + rank, 0)  # entries not kept add 0 to slot 0
    index.view(-1).scatter_add_(0, slot, torch.where(keep, seg_keys % k + 1, 0))  # -1 + (col + 1) = col
    values.view(-1).scatter_add_(0, slot, torch.where(keep, sums, 0.0))
    return dropped


def _sum_by_key(keys: Tensor, vals: Tensor, empty: int) -> tuple[Tensor, Tensor]:
    """Sums of `vals` per distinct key, in key order, padded to len(keys) with key `empty` and sum 0.

    Within a key the values are added in their input order (a stable sort), as `tables.merge_into`'s `index_add_`.
    """
    sorted_keys, order = keys.sort(stable=True)
    start = torch.ones_like(sorted_keys, dtype=torch.bool)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    segment = start.cumsum(0) - 1
    sums = vals.new_zeros(len(keys)).index_add_(0, segment, vals.index_select(0, order))
    seg_keys = torch.full_like(keys, empty).scatter_(0, segment, sorted_keys)  # a segment's entries share a key
    return sums, seg_keys


def _rank_in_rows(sums: Tensor, seg_keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Sort segments by (row, sum descending, class) in place of their order; return (row [n], rank in row [n])."""
    order = sums.argsort(descending=True, stable=True)
    order = order.index_select(0, (seg_keys.index_select(0, order) // k).argsort(stable=True))
    sums.copy_(sums.index_select(0, order))
    seg_keys.copy_(seg_keys.index_select(0, order))
    seg_rows = seg_keys // k  # padding segments: row K
    rank = torch.arange(len(seg_rows), device=seg_rows.device) - torch.searchsorted(seg_rows, seg_rows)
    return seg_rows, rank
