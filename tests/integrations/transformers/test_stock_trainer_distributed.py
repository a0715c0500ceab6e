"""2 CPU processes (torchrun, gloo) on the stock Trainer with `compute_loss_func` equal 1 `LabelSmoothingTrainer`
process over the same global batches: matrix, weights, logged losses, and a crash + resume mid-epoch."""
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
METHODS = ["ols", "lls"]


@pytest.fixture(scope="module")
def stock_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stock_ddp")
    env = subprocess_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(SUPPORT / "trainer_digits.py"), str(out), *METHODS,
           "--batch", "16", "--world_size", "2", "--resume_check", "--stock"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("method", METHODS)
def test_stock_two_processes_equal_one_label_smoothing_trainer(tmp_path, stock_run: Path, method: str) -> None:
    single = train_digits(str(tmp_path), method, batch=32, n_train=128)
    logged = torch.tensor([h["loss"] for h in single.state.log_history if "loss" in h])
    for rank in range(2):
        state = torch.load(stock_run / f"{method}.rank{rank}.pt")
        torch.testing.assert_close(state["matrix"], single.relation_loss.relation_matrix(), atol=1e-5, rtol=0)
        for name, value in single.model.state_dict().items():
            torch.testing.assert_close(state[f"model.{name}"], value, atol=1e-5, rtol=0, msg=name)
        torch.testing.assert_close(state["losses"], logged, atol=1e-4, rtol=0)  # the Trainer's × world size undone
        resumed = torch.load(stock_run / f"{method}.resumed.rank{rank}.pt")
        torch.testing.assert_close(resumed["matrix"], single.relation_loss.relation_matrix(), atol=1e-5, rtol=0)
    assert (single.relation_loss.relation_matrix() - 0.1).abs().max() > 1e-3
