"""2 CPU processes (torchrun, gloo) train to the same matrix and weights as 1 process over the same global batches."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer_digits import train_digits

pytestmark = pytest.mark.slow
METHODS = ["ols", "lspp", "lls"]
HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}  # keep a worktree's path
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "trainer_digits.py"), str(out), *METHODS,
           "--batch", "16", "--world_size", "2", "--resume_check"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_equal_one(tmp_path, two_process_run: Path, method: str) -> None:
    single = train_digits(str(tmp_path), method, batch=32, n_train=128)  # global batch = 2 × 16
    weights = single.model.state_dict()
    ranks = [torch.load(two_process_run / f"{method}.rank{r}.pt") for r in range(2)]
    for state in ranks:
        assert torch.allclose(state["matrix"], single.relation_loss.relation_matrix(), atol=1e-5)
        for name, value in weights.items():
            assert torch.allclose(state[f"model.{name}"], value, atol=1e-5), name
        logged = torch.tensor([h["loss"] for h in single.state.log_history if "loss" in h])
        assert torch.allclose(state["losses"], logged, atol=1e-4)  # same loss scale (no × world size)
    moved = single.relation_loss.relation_matrix() - ranks[0]["matrix"].new_full((10, 10), 0.1)
    assert moved.abs().max() > 1e-3



@pytest.mark.parametrize("method", ["ols", "lls"])
def test_two_processes_resumed_mid_epoch_equal_one(tmp_path, two_process_run: Path, method: str) -> None:
    """Crash after the step-3 checkpoint (of 4 per epoch), resume on 2 processes: same matrix as 1 uninterrupted."""
    single = train_digits(str(tmp_path), method, batch=32, n_train=128)
    for rank in range(2):
        resumed = torch.load(two_process_run / f"{method}.resumed.rank{rank}.pt")
        assert torch.allclose(resumed["matrix"], single.relation_loss.relation_matrix(), atol=1e-5)
