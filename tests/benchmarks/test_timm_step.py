"""benchmarks/_timm_step.py (the timm train.py section of step_overhead.py): what it reads from train.py's log, the
commands it compares, the section it writes."""
from __future__ import annotations

import time
from pathlib import Path

import _timm_step  # benchmarks/ (pytest's `pythonpath`)
import pytest
import torch

from tests.support.digits import write_digits_imagefolder
from tests.support.paths import timm_train_py

TRAIN_PY = timm_train_py()


def _line(epoch: int, step: int, rate: float) -> str:
    """A batch line as timm's train.py logs it (its f-string, with 3-digit seconds)."""
    return (f"INFO: Train: {epoch} [{step:>4d}/3 ({100. * (step + 1) / 3:>3.0f}%)]  Loss: 2.31 (2.31)  "
            f"Time: {32 / rate:.3f}s, {rate:>7.2f}/s  ({32 / rate:.3f}s, {rate:>7.2f}/s)  LR: 1.000e-02  "
            "Data: 0.007 (0.007)")


def test_step_seconds_come_from_the_rate_and_skip_each_epochs_first_step() -> None:
    log = "\n".join([_line(0, 0, 100.0), _line(0, 1, 320.0), "Test: [   0/1]  Time: 0.5 (0.5)", _line(0, 2, 256.0),
                     _line(1, 0, 50.0), _line(1, 1, 400.0)])
    assert _timm_step.step_seconds(log, 32) == [0.1, 0.125, 0.08]


def test_train_py_alone_smooths_and_the_launcher_runs_the_method() -> None:
    flags = _timm_step.train_args(Path("d"), Path("o/run"), "resnet10t", 32, 2, mixup=True)
    alone, ours = _timm_step.command(Path("train.py"), None, flags), _timm_step.command(Path("train.py"), "lls", flags)
    assert alone[-2:] == ["--smoothing", "0.1"] and "timm-train" not in alone
    start = ours.index("timm-train")
    assert ours[start:start + 4] == ["timm-train", "train.py", "--loss-type", "lls"]
    assert alone[3:-2] == flags == ours[-len(flags):] and "--smoothing" not in ours  # the launcher sets 0 itself
    assert flags[-2:] == ["--mixup", "0.2"] and flags[flags.index("--experiment") + 1] == "run"


def test_the_section_compares_each_method_with_train_py_of_the_same_round(tmp_path: Path) -> None:
    times = {(None, False): [0.10, 0.20], (None, True): [0.10, 0.10], ("ls", False): [0.101, 0.202],
             ("ls", True): [0.11, 0.12]}
    result = {"times": times, "ratios": {("ls", False): [1.01, 1.01], ("ls", True): [1.1, 1.2]},
              "isolated": {("ls", False): 0.0003, ("ls", True): 0.001}}
    out = tmp_path / "results.md"
    out.write_text("# Title\n\n## Trainer step (transformers)\n\nkept\n\n## timm train.py step\n\nold\n")
    _timm_step.write_section(out, _timm_step.HEADER, _timm_step.timm_markdown(result, "`cmd`", "CPU", 32, 2, 2,
                                                                             "resnet10t"))
    text = out.read_text()
    assert "kept" in text and "old" not in text and text.count(_timm_step.HEADER) == 1
    assert "| ls | no | 1.010 | 1.010–1.010 | yes | 0.300 | 1.0020 |" in text
    assert "| ls | 0.2 | 1.150 | 1.075–1.225 | no | 1.000 | 1.0100 |" in text
    assert text.rstrip().endswith("[--mixup 0.2]`.") and "Median train.py step: 150.0 ms, 100.0 ms with Mixup" in text


@pytest.mark.slow
@pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")
def test_a_real_train_py_run_logs_the_steps_the_benchmark_reads(tmp_path: Path) -> None:
    """The log format of the real train.py: one epoch of 3 steps gives 2 timed steps, in CPU seconds."""
    write_digits_imagefolder(tmp_path / "digits", train_per_class=5, val_per_class=2)
    flags = _timm_step.train_args(tmp_path / "digits", tmp_path / "out" / "run", "test_efficientnet_gn", 16, 1, False)
    median = _timm_step.run_once(_timm_step.command(TRAIN_PY, "ols", flags), 16)
    assert 0 < median < 10
    with pytest.raises(RuntimeError, match="Expected a finished train.py run .* exit 2"):
        _timm_step.run_once(_timm_step.command(TRAIN_PY, "ols", [*flags, "--relation-top-n", "0"]), 16)


@pytest.mark.parametrize("mixup", [False, True])
def test_the_isolated_cost_charges_the_matrix_update_to_the_method(monkeypatch, mixup: bool) -> None:
    """The measure charges a method's loss step with its matrix's optimizer step: an SGD step made to burn 20 ms of
    this thread's CPU shows in lls's extra cost and not in ls's (no matrix). Thread CPU time, not wall time: a busy
    machine does not move either side of the bound."""
    def burn(self: torch.optim.SGD, closure: object = None) -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.02:
            pass

    monkeypatch.setattr(torch.optim.SGD, "step", burn)
    assert _timm_step.isolated_extra("lls", mixup, 32, reps=5) >= 0.02
    assert _timm_step.isolated_extra("ls", mixup, 32, reps=5) < 0.01
