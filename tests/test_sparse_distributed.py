"""Sparse top-N OLS across 2 gloo processes equals one dense process that saw the whole global batch."""
from __future__ import annotations

import torch

from hf_labelsmooth import create_loss


def _sparse_ols_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    assert dist.get_world_size() == 2
    loss = create_loss("ols", 5, top_n=5)
    for z, y in _ols_batches():
        loss(z[rank * 8:(rank + 1) * 8], y[rank * 8:(rank + 1) * 8])
    loss.swap()
    torch.save(loss.relation_matrix(), f"{out}.{rank}")
    dist.destroy_process_group()


def _ols_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    out = []
    for _ in range(3):
        y = torch.randint(0, 5, (16,), generator=g)
        out.append((torch.randn(16, 5, generator=g) + 2 * torch.nn.functional.one_hot(y, 5), y))
    return out


def test_sparse_ols_two_processes_equal_one_dense(tmp_path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_sparse_ols_worker, args=(port, str(tmp_path / "m")), nprocs=2, join=True)
    single = create_loss("ols", 5)
    for z, y in _ols_batches():
        single(z, y)
    single.swap()
    assert not torch.allclose(single.relation_matrix(), torch.full((5, 5), 0.2))
    for rank in range(2):
        torch.testing.assert_close(torch.load(f"{tmp_path / 'm'}.{rank}"), single.relation_matrix())
