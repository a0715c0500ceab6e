"""OLS state summed across 2 gloo processes equals one process that saw the whole global batch."""
from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import hf_labelsmooth

K, B = 5, 8


def _global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(4):
        y = torch.randint(0, K, (B,), generator=g)
        batches.append((torch.randn(B, K, generator=g) + 2 * F.one_hot(y, K), y))
    return batches


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    assert dist.get_world_size() == 2
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, update_every=3)
    for z, y in _global_batches():
        half = slice(rank * B // 2, (rank + 1) * B // 2)
        loss(z[half], y[half])
    loss.end_epoch()  # no-op with update_every; swap below finishes the period
    loss.consolidate_states()  # rank 0 holds the sum, rank 1 zeros; the swap's all-reduce is unchanged
    torch.save(loss.accumulator.clone(), f"{out}.consolidated.{rank}")
    loss.swap()
    torch.save({k: v for k, v in loss.state_dict().items()}, f"{out}.{rank}")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path) -> None:
    out = str(tmp_path / "state")
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    single = hf_labelsmooth.create_loss("ols", num_classes=K, update_every=3)
    for z, y in _global_batches():
        single(z, y)
    before_swap = single.accumulator.clone()
    single.swap()
    consolidated = [torch.load(f"{out}.consolidated.{rank}") for rank in range(2)]
    assert torch.allclose(consolidated[0], before_swap, atol=1e-6) and consolidated[1].abs().sum() == 0
    states = [torch.load(f"{out}.{rank}") for rank in range(2)]
    for state in states:
        assert torch.allclose(state["matrix"], single.matrix, atol=1e-6)
        assert int(state["steps"]) == 4
    assert not torch.allclose(single.matrix, torch.full((K, K), 1 / K))
