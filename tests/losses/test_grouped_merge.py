"""`merge_groups` (static shapes, for torch.compile) builds the tables `merge_into` builds, entry for entry."""
from __future__ import annotations

import pytest
import torch

from hf_labelsmooth.losses.sparse.grouped_merge import merge_groups
from hf_labelsmooth.losses.sparse.tables import merge_into
from tests.support.factories import generator

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present


def _filled(k: int, m: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index, values = torch.full((k, m), -1), torch.zeros(k, m)
    rows, cols = torch.randint(0, k, (6,), generator=gen), torch.randint(0, k, (6,), generator=gen)
    merge_into(index, values, rows, cols, torch.rand(6, generator=gen).mul(10).round() / 10)  # ties on purpose
    return index, values


@pytest.mark.parametrize("seed", range(40))
def test_equals_merge_into(seed: int) -> None:
    gen = generator(seed)
    k = int(torch.randint(2, 10, (), generator=gen))
    m, w, g = (int(torch.randint(1, k + 1, (), generator=gen)) for _ in range(3))
    index, values = _filled(k, m, gen)
    rows = torch.randint(0, k, (g,), generator=gen)
    cols = torch.stack([torch.randperm(k, generator=gen)[:w] for _ in range(g)])
    vals = torch.rand(g, w, generator=gen).mul(10).round() / 10
    valid = torch.rand(g, generator=gen) > 0.3
    expected_index, expected_values = index.clone(), values.clone()
    expected_dropped = merge_into(expected_index, expected_values, rows[:, None].expand(g, w)[valid].reshape(-1),
                                  cols[valid].reshape(-1), vals[valid].reshape(-1))
    dropped = merge_groups(index, values, rows, cols, vals, valid)
    assert torch.equal(index, expected_index)
    assert torch.equal(values, expected_values)
    torch.testing.assert_close(dropped, expected_dropped)


def test_no_valid_group_changes_nothing() -> None:
    index, values = torch.tensor([[2, -1], [0, 1], [-1, -1]]), torch.tensor([[0.5, 0.0], [0.3, 0.2], [0.0, 0.0]])
    before = index.clone(), values.clone()
    dropped = merge_groups(index, values, torch.tensor([1, 1]), torch.tensor([[2], [0]]), torch.tensor([[1.0], [1.0]]),
                           torch.tensor([False, False]))
    assert torch.equal(index, before[0]) and torch.equal(values, before[1]) and torch.equal(dropped, torch.zeros(3))
