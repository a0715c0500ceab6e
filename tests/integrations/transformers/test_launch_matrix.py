"""The launch matrix of the HF scripts on a machine with no GPU: every way of starting
``train_scripts/run_image_classification.py`` either trains as one real N-process run (global batch N × 16: half the
steps of one process) or stops before any data or model is loaded with one line naming the fix (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.launching import image_script_args, launcher, run, trainer_state

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(torch.cuda.is_available(), reason="the matrix of a machine without a GPU")]
N_TRAIN = 64  # one epoch: 4 steps in one process at batch 16, 2 steps in a real 2-process run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prepare_demo_data import make_digits_imagefolder

    return make_digits_imagefolder(tmp_path_factory.mktemp("digits"), n_train=N_TRAIN, n_val=16)


def train(kind: str, data: Path, tmp_path: Path, *extra: str):
    out = tmp_path / "out"
    result = run([*launcher(kind), *image_script_args(data, out, *extra)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.parametrize("kind, extra", [
    ("python", []), ("torchrun", []), ("torchrun", ["--use_cpu"]), ("accelerate --multi_gpu", []),
    ("accelerate --multi_gpu", ["--use_cpu"])])
def test_launches_that_train_train_one_real_run(data, tmp_path, kind: str, extra: list[str]) -> None:
    """Without --use_cpu, torchrun on a CPU machine used to start 2 independent trainings (4 steps each) writing one
    folder; it is now one DDP run over gloo, as with --use_cpu."""
    out, result = train(kind, data, tmp_path, *extra)
    processes = 1 if kind == "python" else 2
    state = trainer_state(out)
    assert state["global_step"] == N_TRAIN // (16 * processes), (kind, extra, state["global_step"])
    assert state["train_batch_size"] == 16
    assert (out / "relation_matrix" / "config.json").is_file()
    assert not result.our_traceback


@pytest.mark.parametrize("kind, extra, match", [
    ("accelerate", [], "Expected 2 processes from `accelerate launch --num_processes 2` but accelerate started 1"),
    ("accelerate --cpu", [], "Expected 2 processes from `accelerate launch --num_processes 2` but accelerate started"),
    ("python", ["--fp16"], "Expected --bf16 or no half precision on the CPU but got --fp16"),
    ("python", ["--fp16", "--use_cpu"], "Expected --bf16 or no half precision on the CPU but got --fp16"),
    ("torchrun", ["--fp16"], "Expected --bf16 or no half precision on the CPU but got --fp16"),
])
def test_launches_that_cannot_be_real_stop_before_loading_anything(tmp_path, kind: str, extra: list[str],
                                                                     match: str) -> None:
    missing = tmp_path / "no-such-data"  # loading it would fail with another message: the refusal comes first
    result = run([*launcher(kind), *image_script_args(missing, tmp_path / "out", *extra)], tmp_path)
    assert result.returncode == 2 if kind == "python" else result.returncode != 0
    errors = result.error_lines("run_image_classification.py")
    assert errors and all(match in line for line in errors), result.stderr[-3000:]
    assert not result.our_traceback and not (tmp_path / "out").exists()


def test_bf16_on_a_cpu_machine_trains_without_use_cpu(data, tmp_path) -> None:
    out, _ = train("python", data, tmp_path, "--bf16")
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert args.bf16 and args.use_cpu and trainer_state(out)["global_step"] == N_TRAIN // 16
