"""2 CPU processes (torchrun, gloo) train to the same matrix and weights as 1 process over the same global batches."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.paths import SUPPORT, subprocess_env
from tests.support.ports import free_port
from tests.support.trainer_digits import train_digits

pytestmark = pytest.mark.slow
METHODS = ["ols", "lspp", "lls"]


def _launch(out: Path, methods: list[str], *extra: str) -> Path:
    env = subprocess_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(SUPPORT / "trainer_digits.py"), str(out), *methods,
           "--batch", "16", "--world_size", "2", "--resume_check", *extra]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)  # hang guard (busy CI)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    return _launch(tmp_path_factory.mktemp("ddp"), METHODS)


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> Path:
    """The same runs with the model sharded by FSDP2 through Accelerate (`trainer_digits.fsdp_on_cpu`)."""
    return _launch(tmp_path_factory.mktemp("fsdp"), ["ols", "lls"], "--fsdp")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process over the global batches (2 × 16), each method trained once for the module."""
    runs = {}

    def get(method: str):
        if method not in runs:
            runs[method] = train_digits(str(tmp_path_factory.mktemp(method)), method, batch=32, n_train=128)
        return runs[method]
    return get


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_equal_one(single, two_process_run: Path, method: str) -> None:
    single = single(method)
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
def test_two_processes_resumed_mid_epoch_equal_one(single, two_process_run: Path, method: str) -> None:
    """Crash after the step-3 checkpoint (of 4 per epoch), resume on 2 processes: same matrix as 1 uninterrupted."""
    single = single(method)
    for rank in range(2):
        resumed = torch.load(two_process_run / f"{method}.resumed.rank{rank}.pt")
        assert torch.allclose(resumed["matrix"], single.relation_loss.relation_matrix(), atol=1e-5)


@pytest.mark.parametrize("method", ["ols", "lls"])
def test_fsdp_two_processes_equal_one_and_resume(single, fsdp_run: Path, method: str) -> None:
    """FSDP2: the matrix outside the sharded model is averaged once per step and checkpointed; 2 sharded
    processes end with one process's matrix, weights and losses, also after a crash and resume mid-epoch."""
    single = single(method)
    matrix = single.relation_loss.relation_matrix()
    logged = torch.tensor([h["loss"] for h in single.state.log_history if "loss" in h])
    for rank in range(2):
        state = torch.load(fsdp_run / f"{method}.rank{rank}.pt")
        assert torch.allclose(state["matrix"], matrix, atol=1e-5) and torch.allclose(state["losses"], logged, atol=1e-4)
        resumed = torch.load(fsdp_run / f"{method}.resumed.rank{rank}.pt")
        assert torch.allclose(resumed["matrix"], matrix, atol=1e-5)
    gathered = torch.load(fsdp_run / f"{method}.rank0.pt")  # rank 0 holds the weights gathered from the shards
    for name, value in single.model.state_dict().items():
        assert torch.allclose(gathered[f"model.{name}"], value, atol=1e-5), name
    checkpoint = fsdp_run / f"{method}-resume" / "checkpoint-3"
    assert (checkpoint / "relation_loss.safetensors").is_file()
    assert (checkpoint / "relation_optimizer.safetensors").is_file() == (method == "lls")
    assert (matrix - 0.1).abs().max() > 1e-3
