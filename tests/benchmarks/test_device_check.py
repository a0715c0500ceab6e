"""benchmarks/device_check.py: its reference checks pass on this machine's devices, and the script's CPU half runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import device_check  # benchmarks/ (pytest's `pythonpath`)
import pytest
import torch

from tests.support.paths import BENCHMARKS

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("name", "top_n"), device_check.CASES)
def test_each_path_matches_the_float64_reference(name: str, top_n: int | None, kind: str, dtype: str,
                                                 device: str) -> None:
    row = device_check.check_case(name, top_n, 37, kind, dtype, device)
    assert row["ok"], row


def test_the_reference_catches_a_wrong_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: LLS computed as plain label smoothing is caught."""
    monkeypatch.setattr(device_check, "_reference", lambda name, alpha, z, t: -(t * z.log_softmax(-1)).sum(-1).mean())
    assert not device_check.check_case("lls", None, 37, "hard", "float32", "cpu")["ok"]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script is the full device check (5 minutes)")
def test_script_without_a_gpu_runs_the_cpu_half_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "results_gpu.md"
    proc = subprocess.run(["bash", str(BENCHMARKS / "device_check.sh"), "--out", str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "No CUDA GPU: ran the CPU half only" in proc.stdout and "**NO**" not in proc.stdout
    assert proc.stdout.count("| yes |") == len(device_check.CASES) * 2 * 2 * 3 and not out.exists()
