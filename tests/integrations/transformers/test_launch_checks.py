"""The launch checks of `LabelSmoothingTrainingArguments` in one process (the launches themselves:
test_launch_matrix.py): CPU without an accelerator, fp16 on the CPU refused, accelerate's 1-of-N refused."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from hf_labelsmooth import LabelSmoothingTrainingArguments
from hf_labelsmooth.integrations.transformers import launch

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks of a machine without a GPU")


@no_gpu
def test_without_an_accelerator_the_arguments_are_a_cpu_run_and_bf16_works(tmp_path) -> None:
    args = LabelSmoothingTrainingArguments(output_dir=str(tmp_path), bf16=True, report_to="none")
    assert args.use_cpu and args.bf16 and args.device.type == "cpu"


@no_gpu
@pytest.mark.parametrize("use_cpu", [False, True])
def test_fp16_on_the_cpu_is_refused(tmp_path, use_cpu: bool) -> None:
    with pytest.raises(ValueError, match="Expected --bf16 or no half precision on the CPU but got --fp16"):
        LabelSmoothingTrainingArguments(output_dir=str(tmp_path), fp16=True, use_cpu=use_cpu, report_to="none")


def test_accelerate_launch_that_started_one_of_n_processes_is_refused(monkeypatch, tmp_path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"\0".join([sys.executable.encode(), b"accelerate", b"launch", b"--num_processes=3",
                                    b"train.py", b""]))
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(cmdline if str(path).startswith("/proc/")
                                                                          else path, *a, **k))
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "NO")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch.requested_processes() == 3
    with pytest.raises(ValueError, match=r"Expected 3 processes from `accelerate launch --num_processes 3` but "
                                         r"accelerate started 1 .* `accelerate launch --multi_gpu --num_processes 3"):
        launch.prepare_launch(SimpleNamespace(use_cpu=True, deepspeed=None, fp16=False))
    monkeypatch.setenv("WORLD_SIZE", "3")  # a multi-process launcher: the count is in the environment
    assert launch.requested_processes() == 1


def test_a_trainer_that_is_not_distributed_in_a_launched_group_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = SimpleNamespace(world_size=1, parallel_mode=SimpleNamespace(value="not_parallel"))
    with pytest.raises(ValueError, match="Expected one distributed Trainer across the 2 launched processes but got a "
                                         "Trainer of world size 1 .* 2 separate trainings would write one"):
        launch.check_launch(args)
    launch.check_launch(SimpleNamespace(world_size=2))


@pytest.mark.parametrize("method, refused", [("lls", True), ("lspp", True), ("ols", False), ("ce", False)])
def test_deepspeed_with_a_learned_matrix_is_refused_until_checked(monkeypatch, method: str, refused: bool) -> None:
    args = SimpleNamespace(deepspeed="ds_config.json", label_smoothing_method=method)
    monkeypatch.delenv(launch.DEEPSPEED_ENV, raising=False)
    if refused:
        with pytest.raises(ValueError, match=f"Expected no --deepspeed with --label_smoothing_method {method} but "
                                             "got --deepspeed ds_config.json: DeepSpeed scales the loss"):
            launch.check_deepspeed(args)
    else:
        launch.check_deepspeed(args)
    monkeypatch.setenv(launch.DEEPSPEED_ENV, "1")  # the device check lifts it to run the case
    launch.check_deepspeed(args)
