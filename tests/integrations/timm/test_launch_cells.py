"""The timm launcher's cells of the launch matrix: a launch that cannot train a relation loss stops before train.py
builds any model or data, with one line naming the fix (``hf-labelsmooth timm-train``: exit 2, no traceback).

timm's own train.py trained through the launcher (1 and 2 processes) is tests/test_timm_launcher.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hf_labelsmooth.cli import main
from hf_labelsmooth.integrations.timm.launcher import LaunchError, launch
from tests.support.paths import timm_train_py

TRAIN_PY = timm_train_py()
NOT_TIMM = """
import pathlib, sys
pathlib.Path(sys.argv[sys.argv.index("--output") + 1], "ran").write_text("trained without a relation loss")
"""
# an older train.py: it names ClassificationTask (in this comment) but builds its own criterion and loop
OWN_CRITERION = """
import argparse, pathlib
import torch
from timm import utils
parser = argparse.ArgumentParser()
parser.add_argument("--output")
parser.add_argument("--device", default="cpu")
parser.add_argument("--smoothing", type=float, default=0.1)
args = parser.parse_args()
utils.init_distributed_device(args)
model = torch.nn.Linear(4, 3)
loss = torch.nn.CrossEntropyLoss()(model(torch.randn(8, 4)), torch.randint(0, 3, (8,)))
loss.backward()
pathlib.Path(args.output, "ran").write_text("trained without a relation loss")
"""


def script(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(source)
    return path


def test_a_script_that_is_not_timms_is_refused_before_it_runs(tmp_path) -> None:
    with pytest.raises(LaunchError, match="Expected timm's train.py .* which builds no ClassificationTask"):
        launch(script(tmp_path, NOT_TIMM), ["--output", str(tmp_path), "--loss-type", "ols"])
    assert not (tmp_path / "ran").exists()


def test_an_older_train_py_with_its_own_criterion_is_reported_not_passed(tmp_path) -> None:
    with pytest.raises(LaunchError, match="to build timm.task.ClassificationTask, where the launcher puts the lls "
                                          "loss, but it trained without one"):
        launch(script(tmp_path, "# ClassificationTask\n" + OWN_CRITERION), ["--output", str(tmp_path),
                                                                              "--loss-type", "lls"])


@pytest.mark.parametrize("flags, match", [
    ([], r"Expected --loss-type \(one of \['lls', 'ls', 'lspp', 'ols', 'relation_prior'\]\) but got none"),
    (["--loss-type", "soft_kl"], "but got 'soft_kl', which smooths nothing with class labels"),
])
def test_no_relation_loss_is_refused_before_the_script_runs(tmp_path, flags: list[str], match: str) -> None:
    with pytest.raises(LaunchError, match=match):
        launch(script(tmp_path, "from timm.task import ClassificationTask\n" + NOT_TIMM),
               ["--output", str(tmp_path), *flags])
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")
@pytest.mark.skipif(torch.cuda.is_available(), reason="the cell of a machine without CUDA")
def test_timms_train_py_without_device_on_a_cpu_machine_is_one_line(tmp_path, capsys) -> None:
    """train.py's default --device cuda used to end in a 30-line traceback; the data folder does not exist, so the
    refusal comes before train.py builds its model or data."""
    code = main(["timm-train", str(TRAIN_PY), "--loss-type", "lls", "--data-dir", str(tmp_path / "missing"),
                 "--output", str(tmp_path), "--model", "test_efficientnet_gn"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("hf-labelsmooth timm-train: error: Expected --device cpu on this machine (no CUDA GPU) "
                          "but got --device cuda (train.py's default is cuda). Add --device cpu")


def test_command_line_refusals_are_one_line_with_exit_2(tmp_path, capsys) -> None:
    path = script(tmp_path, NOT_TIMM)
    assert main(["timm-train", str(path), "--loss-type", "lls", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-labelsmooth timm-train: error: Expected timm's train.py") and err.count("\n") == 1
    assert not (tmp_path / "ran").exists()
