"""End-to-end tests of train_scripts/train_timm.py on an ImageFolder of scikit-learn digits (PNG files).

Single-process runs call the script's `main` in this process (timm is imported once); the distributed test launches
``torchrun --nproc_per_node 2`` (gloo on CPU) and compares with one process seeing the same global batches.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_labelsmooth.relations.matrix import ClassRelationMatrix
from timm_ddp_worker import load_script
from timm_digits import write_digits_imagefolder

pytestmark = pytest.mark.slow
LOSSES = ["ce", "ls", "ols", "lspp", "lls"]
BASE = ["--model", "test_efficientnet_gn", "--img-size", "16", "--crop-pct", "1.0", "--warmup-epochs", "0",
        "--workers", "0", "--log-interval", "100"]
FAST = BASE + ["-b", "32", "--epochs", "3", "--opt", "adamw", "--lr", "0.01", "--no-aug"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("digits")
    return root, write_digits_imagefolder(root, train_per_class=24, val_per_class=8)


@pytest.fixture(scope="module")
def script():
    torch.set_num_threads(1)
    return load_script()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _run(script, data, out: Path, name: str, args: list[str]) -> Path:
    result = script.main(["--data-dir", str(data[0]), "--output", str(out), "--experiment", name, *args])
    assert result["world_size"] == 1
    return Path(result["output_dir"])


def _load(path: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _summary(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "summary.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(script, data, out):
    """Runs cached by (loss, mixup), so that several tests can inspect one training."""
    cache: dict[tuple[str, bool], Path] = {}

    def get(loss: str, mixup: bool) -> Path:
        if (loss, mixup) not in cache:
            extra = ["--mixup", "0.4"] if mixup else []
            cache[loss, mixup] = _run(script, data, out, f"{loss}-mixup{int(mixup)}", FAST + ["--loss", loss, *extra])
        return cache[loss, mixup]

    return get


@pytest.mark.parametrize("mixup", [False, True], ids=["plain", "mixup"])
@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_and_writes_its_matrix(trained, data, loss: str, mixup: bool) -> None:
    run_dir = trained(loss, mixup)
    rows = _summary(run_dir)
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["eval_top1"] > 30.0  # chance is 10%
    matrix_dir = run_dir / "relation_matrix"
    if loss in ("ce", "ls"):  # timm's own loss, uniform smoothing: no learned relation matrix
        assert not matrix_dir.exists()
        return
    matrix = ClassRelationMatrix.from_pretrained(matrix_dir)
    assert matrix.label_names == data[1] and matrix.method == loss
    torch.testing.assert_close(matrix.matrix.sum(-1), torch.ones(10))
    state = _load(run_dir / "last.pth.tar")["task_state"]["criterion"]
    if loss == "ols":  # swapped at epoch ends: no longer the uniform start, and A zeroed after the swap
        assert (matrix.matrix - 0.1).abs().max() > 0.05 and state["accumulator"].abs().sum() == 0
    if loss in ("lspp", "lls"):  # learned, saved in the checkpoint, in a param group of its own
        assert state["logits"].abs().max() > 1e-3
        torch.testing.assert_close(matrix.logits, state["logits"])
        *network, group = _load(run_dir / "last.pth.tar")["optimizer"]["param_groups"]
        network_decay = max(g["weight_decay"] for g in network)
        assert network_decay > 0 and len(group["params"]) == 1
        assert group["weight_decay"] == (network_decay if loss == "lspp" else 0.0)  # SPEC: LS++ authors' decay


@pytest.mark.parametrize("mixup", [False, True], ids=["plain", "mixup"])
def test_timm_ce_with_smoothing_equals_our_ls(trained, mixup: bool) -> None:
    """timm 'ce' + --smoothing 0.1 (applied by Mixup under mixup) == 'ls' α=0.1 with Mixup unsmoothed: no double
    smoothing."""
    ce, ls = _summary(trained("ce", mixup)), _summary(trained("ls", mixup))
    for a, b in zip(ce, ls):  # same maths, different float rounding (fused kernel vs log_softmax): measured
        # gaps <= 1.1e-4 relative on the train loss and one eval image; double smoothing (0.19) moves it by far more
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert abs(a["eval_top1"] - b["eval_top1"]) <= 100 / 80 + 1e-9  # at most one of the 80 eval images


def test_relation_matrix_prior_trains_and_checks_label_names(script, trained, data, out, tmp_path) -> None:
    source = trained("lls", False) / "relation_matrix"
    run_dir = _run(script, data, out, "prior", FAST + ["--epochs", "1", "--loss", "relation_prior",
                                                       "--relation-matrix", str(source)])
    assert _summary(run_dir)[0]["eval_top1"] > 20.0
    assert not (run_dir / "relation_matrix").exists()  # a fixed prior learns nothing to save
    wrong = ClassRelationMatrix.from_pretrained(source)
    wrong.label_names = [f"class{i}" for i in range(10)]
    wrong.save_pretrained(tmp_path / "wrong", card=False)
    with pytest.raises(ValueError, match="Expected label names"):
        _run(script, data, out, "prior-wrong", FAST + ["--loss", "relation_prior", "--relation-matrix",
                                                       str(tmp_path / "wrong")])


def test_smoothing_twice_with_mixup_is_refused(script, data, out) -> None:
    with pytest.raises(ValueError, match="smooth twice"):
        _run(script, data, out, "twice", FAST + ["--loss", "ols", "--mixup", "0.4", "--smoothing", "0.1"])


def _assert_states_equal(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_states_equal(a[key], b[key], atol)
        elif isinstance(a[key], torch.Tensor):
            rtol = 1e-4 if key == "accumulator" else 0.0  # OLS's sums of probabilities (not weights nor matrix)
            torch.testing.assert_close(a[key].float(), b[key].float(), rtol=rtol, atol=atol,
                                       msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("loss,extra", [("lls", ["--mixup", "0.4", "--model-ema", "--model-ema-decay", "0.9"]),
                                        ("ols", ["--ols-update-every", "5", "--cutmix", "1.0"])], ids=["lls", "ols"])
def test_resume_equals_uninterrupted(script, data, out, loss: str, extra: list[str]) -> None:
    """Augmentation on, Mixup/CutMix, EMA, OLS mid-epoch swaps (A non-zero at the epoch end): all restored."""
    args = BASE + ["-b", "32", "--epochs", "3", "--opt", "sgd", "--lr", "0.01", "--loss", loss, *extra]
    full = _run(script, data, out, f"resume-full-{loss}", args)
    resumed = _run(script, data, out, f"resume-part-{loss}", args + ["--resume", str(full / "checkpoint-0.pth.tar")])
    assert [row["epoch"] for row in _summary(resumed)] == [1.0, 2.0]
    a, b = _load(full / "last.pth.tar"), _load(resumed / "last.pth.tar")
    if loss == "ols":
        assert _load(full / "checkpoint-0.pth.tar")["task_state"]["criterion"]["accumulator"].abs().sum() > 0
    _assert_states_equal({k: a[k] for k in ("state_dict", "task_state", "optimizer", "state_dict_ema") if k in a},
                         {k: b[k] for k in ("state_dict", "task_state", "optimizer", "state_dict_ema") if k in b},
                         atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(script, data, out, tmp_path) -> None:
    """torchrun 2×16 == 1×32 (same global batches): weights and matrices within 1e-5, for OLS and LLS."""
    common = BASE + ["--epochs", "2", "--opt", "sgd", "--lr", "0.002", "--no-aug"]
    configs = {"ols": ["--loss", "ols", "--ols-update-every", "3"], "lls": ["--loss", "lls", "--relation-lr", "0.2"]}
    argv = []
    for loss, extra in configs.items():
        argv += ["--next"] * bool(argv) + common + ["--data-dir", str(data[0]), "--output", str(out), "-b", "16",
                                                    "--experiment", f"ddp2-{loss}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    worker = Path(__file__).parent / "timm_ddp_worker.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(worker), str(tmp_path), *argv]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, (loss, extra) in enumerate(configs.items()):
        ranks = [json.loads((tmp_path / f"run{i}-rank{r}.json").read_text()) for r in (0, 1)]
        assert [(r["world_size"], r["rank"]) for r in ranks] == [(2, 0), (2, 1)]
        single = _run(script, data, out, f"ddp1-{loss}", common + ["-b", "32", *extra])
        a, b = _load(single / "last.pth.tar"), _load(out / "train" / f"ddp2-{loss}" / "last.pth.tar")
        _assert_states_equal({"m": a["state_dict"], "t": a["task_state"]}, {"m": b["state_dict"], "t": b["task_state"]},
                             atol=1e-5)
        state = a["task_state"]["criterion"]
        learned = state["logits"] if loss == "lls" else state["matrix"] - 0.1
        assert learned.abs().max() > 1e-2  # the matrix moved: a desynchronised copy would not match
