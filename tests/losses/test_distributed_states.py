"""N processes = 1 process, for every registered loss (dense and ``top_n``; hard, Mixup and token targets).

The multi-process tests are marked slow (CONTRIBUTING: multi-process tests are; CI runs them); the single-process
reference checks are not.

One spawn of 2 and one of 3 gloo workers runs every case of `loss_cases` twice: straight through, and resumed from a
checkpoint written mid-period (consolidated on rank 0, loaded on every rank). Each must give the single-process
global batch's per-batch losses, final relation matrix, parameters and buffers, on every rank alike.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import hf_labelsmooth
from hf_labelsmooth.losses.sparse.tables import merge_top_tables
from tests.support.loss_cases import K, LossCase, loss_cases, make_case_loss, narrow_tables, run_case
from tests.support.ports import free_port

WORLDS = (2, 3)
MODES = ("straight", "resumed")
CASES = loss_cases(("hard", "mixup", "tokens"))  # tokens: [B, T, K] logits, labels with -100 (counted in tokens)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    assert dist.get_world_size() == world
    results = {}
    for case in CASES:
        results[(case.id, "straight")] = run_case(case, rank, world)
        results[(case.id, "resumed")] = run_case(case, rank, world, checkpoint=f"{out}.{case.id}.safetensors")
        if narrow_tables(case):
            results[(case.id, "narrow")] = run_case(case, rank, world, f"{out}.{case.id}.narrow.safetensors",
                                                    narrow_tables(case))
            loss = make_case_loss(case, **narrow_tables(case))
            _fill_tables(loss, rank)
            loss.sync_states()
            results[(case.id, "synced")] = {k: v.clone() for k, v in loss.state_dict().items()}
    torch.save(results, f"{out}.{rank}")
    dist.barrier()  # no rank tears the gloo group down while another still uses it
    dist.destroy_process_group()


def _fill_tables(loss: hf_labelsmooth.RelationLoss, rank: int) -> list[tuple[torch.Tensor, ...]]:
    """Give the loss's table states rank-specific random tables (distinct classes per row, some slots empty)."""
    g = torch.Generator().manual_seed(100 + rank)
    tables = []
    for spec in loss.state_specs:
        if spec.reduction is not merge_top_tables:
            continue
        index, values, *rest = (getattr(loss, name) for name in spec.names)
        index.copy_(torch.rand(len(index), K, generator=g).argsort(dim=-1)[:, : index.shape[1]])
        values.copy_(torch.rand(values.shape, generator=g) + 0.5)
        empty = torch.rand(index.shape, generator=g) < 0.2
        index.masked_fill_(empty, -1), values.masked_fill_(empty, 0.0)
        for dropped in rest:
            dropped.copy_(torch.rand(dropped.shape, generator=g))
        tables.append(tuple(getattr(loss, name).clone() for name in spec.names))
    return tables


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[dict]]:
    """Results of every rank of each world size: {world: [rank 0 results, rank 1 results, ...]}."""
    out = {}
    for world in WORLDS:
        prefix = str(tmp_path_factory.mktemp(f"world{world}") / "results")
        mp.spawn(_worker, args=(world, free_port(), prefix), nprocs=world, join=True)
        out[world] = [torch.load(f"{prefix}.{rank}") for rank in range(world)]
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    """The single-process reference (straight) and the single-process resumed run, per case."""
    path = tmp_path_factory.mktemp("single")
    return {(case.id, mode): run_case(case, 0, 1, None if mode == "straight" else str(path / f"{case.id}.st"))
            for case in CASES for mode in MODES}


def max_difference(result: dict, reference: dict) -> float:
    """Largest |result - reference| over every entry (losses, matrix, parameters, buffers)."""
    assert result.keys() == reference.keys()
    return max(float((v.double() - reference[k].double()).abs().max()) if v.numel() else 0.0
               for k, v in result.items())


def _assert_same(result: dict, reference: dict, where: str) -> None:
    assert result.keys() == reference.keys(), where
    for key, value in reference.items():
        if torch.is_floating_point(value):
            torch.testing.assert_close(result[key], value, rtol=1e-5, atol=1e-5, msg=lambda m: f"{where} {key}: {m}")
        else:
            assert torch.equal(result[key], value), f"{where} {key}: {result[key]} != {value}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reference_learned_something(case: LossCase, single: dict) -> None:
    """The runs are not vacuous: matrices that learn moved off their start, sparse slots were refreshed."""
    reference = single[(case.id, "straight")]
    fresh = make_case_loss(case)
    if fresh.learns_relations:
        assert not torch.allclose(reference["matrix"], fresh.relation_matrix(), atol=1e-4)
    if "state.slots" in reference:
        assert not torch.equal(reference["state.slots"], fresh.slots)
    _assert_same(single[(case.id, "resumed")], reference, "1 process resumed")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_n_processes_equal_one(case: LossCase, world: int, mode: str, ranks: dict, single: dict) -> None:
    reference = single[(case.id, "straight")]
    results = [rank_results[(case.id, mode)] for rank_results in ranks[world]]
    for rank, result in enumerate(results):
        _assert_same(result, reference, f"{world} processes ({mode}), rank {rank}:")
        for key, value in result.items():  # every process holds the same bits, whatever its rank
            assert torch.equal(value, results[0][key]), f"rank {rank} differs from rank 0 in {key}"


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("case", [c for c in CASES if narrow_tables(c)], ids=lambda c: c.id)
def test_lossy_table_merges_give_every_rank_the_same_state(case: LossCase, world: int, ranks: dict) -> None:
    """Tables too narrow for every class (a sketch: 1 and N processes may differ) still end in one state on every
    rank, through a mid-period checkpoint."""
    results = [rank_results[(case.id, "narrow")] for rank_results in ranks[world]]
    for rank, result in enumerate(results[1:], start=1):
        for key, value in result.items():
            assert torch.equal(value, results[0][key]), f"rank {rank} differs from rank 0 in {key}"


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("case", [c for c in CASES if narrow_tables(c)], ids=lambda c: c.id)
def test_sync_merges_the_tables_of_all_processes(case: LossCase, world: int, ranks: dict) -> None:
    """`sync_states` gives every rank the one-pass merge of all ranks' tables (checked against brute force in
    test_sparse.py), whatever the rank: no merge order, no trimming between merges (the former pairwise merge of
    sparse OLS failed this with 3 processes)."""
    loss = make_case_loss(case, **narrow_tables(case))
    per_rank = [_fill_tables(loss, rank) for rank in range(world)]
    specs = [spec for spec in loss.state_specs if spec.reduction is merge_top_tables]
    assert specs, "a sparse loss declares its tables"
    for table, spec in enumerate(specs):
        expected = merge_top_tables([tables[table] for tables in per_rank])
        for rank_results in ranks[world]:
            for name, value in zip(spec.names, expected):
                torch.testing.assert_close(rank_results[(case.id, "synced")][name], value)


def test_every_registered_loss_is_covered() -> None:
    covered = {case.name for case in loss_cases()}
    assert covered == set(hf_labelsmooth.list_losses())
    sparse = {case.name for case in loss_cases() if case.top_n is not None}
    assert sparse == set(hf_labelsmooth.list_losses(supports_top_n=True))
