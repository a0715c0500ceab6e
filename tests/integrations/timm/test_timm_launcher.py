"""End-to-end: timm's own, unmodified train.py trained through the launcher (``hf-labelsmooth timm-train``).

Every run uses the real train.py (``shared/timm-train/train.py``, or ``$TIMM_TRAIN_PY``) on an ImageFolder of
scikit-learn digits. Single-process runs go through `launch` in this process; the command line and torchrun run in
subprocesses.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hf_labelsmooth.integrations.timm.launcher import LaunchError, launch
from hf_labelsmooth.relations import load_relations
from hf_labelsmooth.relations.provenance import content_sha256
from tests.support.digits import write_digits_imagefolder
from tests.support.paths import SUPPORT, subprocess_env, timm_train_py
from tests.support.ports import free_port

TRAIN_PY = timm_train_py()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")]
COMMON = ["--device", "cpu", "--model", "test_efficientnet_gn", "--num-classes", "10", "--img-size", "16",
          "--crop-pct", "1.0", "--warmup-epochs", "0", "--workers", "0", "--log-interval", "100", "-b", "32",
          "--opt", "adamw", "--lr", "0.003"]
FAST = COMMON + ["--epochs", "2", "--no-aug"]
STEPS_PER_EPOCH = 240 // 32  # 24 images x 10 classes, the last partial batch dropped


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("digits")
    return root, write_digits_imagefolder(root, train_per_class=24, val_per_class=8)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("runs")


def run(data, out: Path, name: str, args: list[str]) -> Path:
    result = launch(TRAIN_PY, ["--data-dir", str(data[0]), "--output", str(out), "--experiment", name, *args])
    assert result.world_size == 1 and result.output_dir == str(out / name)
    return out / name


def checkpoint(path: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def summary(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "summary.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(data, out):
    """Runs cached by (loss, mixup), so that several tests inspect one training."""
    cache: dict[tuple[str, bool], Path] = {}

    def get(loss: str, mixup: bool) -> Path:
        if (loss, mixup) not in cache:
            extra = ["--mixup", "0.4", "--cutmix", "1.0"] if mixup else []
            cache[loss, mixup] = run(data, out, f"{loss}-mixup{int(mixup)}", FAST + ["--loss-type", loss, *extra])
        return cache[loss, mixup]

    return get


@pytest.mark.parametrize("mixup", [False, True], ids=["plain", "mixup-cutmix"])
@pytest.mark.parametrize("loss", ["ls", "ols", "lspp", "lls"])
def test_each_relation_loss_trains_and_writes_its_matrix(trained, data, loss: str, mixup: bool) -> None:
    run_dir = trained(loss, mixup)
    rows = summary(run_dir)
    assert len(rows) == 2 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["eval_top1"] > 30.0  # chance is 10%
    assert yaml.safe_load((run_dir / "args.yaml").read_text())["smoothing"] == 0.0  # the launcher's default
    state = checkpoint(run_dir / "last.pth.tar")
    assert state["task_state"]["completed_epochs"] == 2
    if loss == "ls":  # uniform smoothing learns no matrix
        assert not (run_dir / "relation_matrix").exists()
        return
    matrix = load_relations(run_dir / "relation_matrix")
    assert matrix.label_names == data[1] and matrix.method == loss and matrix.epochs == 2
    assert matrix.source_model is None and matrix.dataset == f"{data[0].name} (local)"  # from scratch, local data
    assert matrix.training["architecture"] == "test_efficientnet_gn"
    assert "README.md" in os.listdir(run_dir / "relation_matrix")
    torch.testing.assert_close(matrix.matrix.sum(-1), torch.ones(10))
    if loss in ("lspp", "lls"):
        torch.testing.assert_close(matrix.logits, state["task_state"]["criterion"]["logits"])


@pytest.mark.parametrize("loss", ["lspp", "lls"])
def test_learnable_matrix_is_optimised_with_the_methods_weight_decay(trained, loss: str) -> None:
    from hf_labelsmooth import get_loss_class

    state = checkpoint(trained(loss, False) / "last.pth.tar")
    *network, group = state["optimizer"]["param_groups"]
    network_decay = max(g["weight_decay"] for g in network)
    assert group["name"] == "relation_matrix" and len(group["params"]) == 1 and network_decay == 2e-5
    method_decay = get_loss_class(loss).relation_weight_decay
    assert group["weight_decay"] == (network_decay if method_decay is None else method_decay)  # lspp: 2e-5, lls: 0
    assert state["optimizer"]["state"][group["params"][0]]["exp_avg"].abs().max() > 0  # AdamW stepped it
    assert state["task_state"]["criterion"]["logits"].abs().max() > 1e-3  # moved from its zero start


def test_ols_swaps_at_each_epoch_end(trained) -> None:
    run_dir = trained("ols", False)
    first, last = (checkpoint(run_dir / f"checkpoint-{e}.pth.tar")["task_state"]["criterion"] for e in (0, 1))
    for epoch, state in enumerate((first, last), start=1):  # swapped before the checkpoint: A emptied, S new
        assert state["accumulator"].abs().sum() == 0 and state["counts"].sum() == 0
        assert int(state["steps"]) == epoch * STEPS_PER_EPOCH
    assert (first["matrix"] - 0.1).abs().max() > 0.05  # no longer the uniform start
    assert (last["matrix"] - first["matrix"]).abs().max() > 1e-3  # swapped again after the second epoch
    torch.testing.assert_close(load_relations(run_dir / "relation_matrix").matrix, last["matrix"])


@pytest.mark.parametrize("mixup", [[], ["--mixup", "0.4"]], ids=["plain", "mixup"])
def test_smoothing_with_a_relation_loss_is_refused(data, out, mixup: list[str]) -> None:
    why = "smooth them twice" if mixup else "smoothing weight from --ls-alpha"
    with pytest.raises(LaunchError, match=f"Expected --smoothing 0 with --loss-type ols but got 0.1: .*{why}"):
        run(data, out, "refused", FAST + ["--loss-type", "ols", "--smoothing", "0.1", *mixup])
    assert not (out / "refused").exists()  # refused before train.py built anything


def test_relation_prior_trains_and_checks_class_names(trained, data, out, tmp_path) -> None:
    source = trained("lls", False) / "relation_matrix"
    run_dir = run(data, out, "prior", FAST + ["--epochs", "1", "--loss-type", "relation_prior",
                                                "--relation-matrix", str(source)])
    assert summary(run_dir)[0]["eval_top1"] > 20.0
    assert "task_state" in checkpoint(run_dir / "last.pth.tar")
    digest = content_sha256(load_relations(source))  # the root card names the prior the student learned from
    assert f"| Prior matrix (`relation_prior`) | relation\\_matrix (local) (sha256 {digest}) |" in \
        (run_dir / "README.md").read_text()
    wrong = load_relations(source)
    wrong.label_names = [f"class{i}" for i in range(10)]
    wrong.save_pretrained(tmp_path / "wrong", card=False)
    with pytest.raises(LaunchError, match="Expected label names"):
        run(data, out, "prior-wrong", FAST + ["--loss-type", "relation_prior", "--relation-matrix",
                                              str(tmp_path / "wrong")])


def _assert_states_equal(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], dict):
            _assert_states_equal(a[key], b[key], f"{where}.{key}")
        elif isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=lambda m, k=f"{where}.{key}": f"{k}: {m}")
        else:
            assert a[key] == b[key], f"{where}.{key}"


@pytest.mark.parametrize("loss,extra", [
    ("lls", ["--mixup", "0.4", "--model-ema", "--model-ema-decay", "0.9"]),
    ("ols", ["--relation-update-every", "5", "--cutmix", "1.0"]),
], ids=["lls-mixup-ema", "ols-period-cutmix"])
def test_resume_ends_where_the_uninterrupted_run_does(data, out, loss: str, extra: list[str]) -> None:
    """Augmentation on, Mixup/CutMix, EMA, OLS mid-epoch swaps (A non-zero in the checkpoint): all restored."""
    args = COMMON + ["--epochs", "3", "--loss-type", loss, *extra]
    full = run(data, out, f"resume-full-{loss}", args)
    resumed = run(data, out, f"resume-part-{loss}", args + ["--resume", str(full / "checkpoint-0.pth.tar")])
    assert [row["epoch"] for row in summary(resumed)] == [1.0, 2.0]
    if loss == "ols":
        assert checkpoint(full / "checkpoint-0.pth.tar")["task_state"]["criterion"]["accumulator"].abs().sum() > 0
    a, b = checkpoint(full / "last.pth.tar"), checkpoint(resumed / "last.pth.tar")
    keys = ("state_dict", "task_state", "optimizer", "state_dict_ema")
    _assert_states_equal({k: a[k] for k in keys if k in a}, {k: b[k] for k in keys if k in b})
    torch.testing.assert_close(load_relations(resumed / "relation_matrix").matrix,
                               load_relations(full / "relation_matrix").matrix, rtol=0, atol=0)


def test_update_period_counts_optimizer_steps_as_the_trainer_does(data, out, tmp_path, monkeypatch) -> None:
    """--relation-update-every N with --grad-accum-steps 2 swaps OLS after the same training batches as the Trainer
    with gradient_accumulation_steps=2: every N optimizer steps, across the epoch boundary (15 batches, 8 steps an
    epoch), and not at the epoch end."""
    from hf_labelsmooth.integrations.transformers import LabelSmoothingTrainer
    from hf_labelsmooth.losses.ols import OnlineLabelSmoothing
    from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model

    swaps: list[int] = []  # the loss's count of training batches at each swap
    swap = OnlineLabelSmoothing.swap
    monkeypatch.setattr(OnlineLabelSmoothing, "swap", lambda self: (swaps.append(int(self.steps)), swap(self))[1])
    run(data, out, "period-accum", COMMON + ["--epochs", "2", "--no-aug", "-b", "16", "--grad-accum-steps", "2",
                                             "--loss-type", "ols", "--relation-update-every", "3"])
    timm_swaps, swaps[:] = list(swaps), []
    trainer = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(15 * 16), args=digits_args(
        str(tmp_path), "ols", 16, num_train_epochs=2, gradient_accumulation_steps=2, relation_update_every=3))
    trainer.train()
    assert trainer.state.global_step == 16
    assert timm_swaps == swaps == [6, 12, 17, 23, 29]  # optimizer steps 3, 6 | 9, 12, 15 (8 steps an epoch)


@pytest.mark.parametrize("loss", ["ls", "ols", "lspp", "lls"])
def test_torchcompile_trains_each_loss_as_eager(trained, data, out, loss: str) -> None:
    """--torchcompile (aot_eager: Dynamo + AOTAutograd, the inductor front end, fast on 2 cores): model and loss
    compiled (LS++/LLS in one graph with the model), validation on the compiled model alone, the eager run's losses,
    accuracies, weights and loss state."""
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    run_dir = run(data, out, f"compiled-{loss}", FAST + ["--loss-type", loss, "--torchcompile", "aot_eager"])
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames  # it did compile
    eager = trained(loss, False)
    for a, b in zip(summary(eager), summary(run_dir), strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert abs(a["eval_top1"] - b["eval_top1"]) <= 100 / 80 + 1e-9  # at most one of the 80 eval images
    a, b = checkpoint(eager / "last.pth.tar"), checkpoint(run_dir / "last.pth.tar")
    assert "conv_stem.weight" in b["state_dict"]  # the bare model's keys: no _orig_mod. prefix
    for part in ("state_dict", "task_state"):
        for key, value in _flat(a[part]).items():
            torch.testing.assert_close(_flat(b[part])[key].float(), value.float(), rtol=1e-4, atol=1e-4, msg=key)


def _flat(state: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, torch.Tensor):
            out[prefix + key] = value
    return out


@pytest.mark.parametrize("loss,extra", [("ols", ["--relation-update-every", "3"]), ("lls", ["--relation-lr", "0.05"])])
def test_torchrun_two_processes_end_with_identical_matrices(data, tmp_path, loss: str, extra: list[str]) -> None:
    args = [*FAST, "-b", "16", "--data-dir", str(data[0]), "--output", str(tmp_path), "--experiment", "ddp",
            "--loss-type", loss, *extra]
    env = subprocess_env(OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(SUPPORT / "timm_launch_worker.py"), str(tmp_path), str(TRAIN_PY), *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world_size"], r["rank"]) for r in ranks] == [(2, 0), (2, 1)]
    matrices = [load_file(tmp_path / f"rank{r}.safetensors")["matrix"] for r in (0, 1)]
    torch.testing.assert_close(matrices[0], matrices[1], rtol=0, atol=0)
    assert (matrices[0] - 0.1).abs().max() > 1e-3  # it moved: a desynchronised copy would differ
    torch.testing.assert_close(load_relations(tmp_path / "ddp" / "relation_matrix").matrix, matrices[0])


def test_command_line_trains_and_reports_refusals_in_one_line(data, tmp_path) -> None:
    base = [sys.executable, "-m", "hf_labelsmooth.cli", "timm-train", "--loss-type", "ols", str(TRAIN_PY),
            "--data-dir", str(data[0]), "--output", str(tmp_path), *FAST, "--epochs", "1", "--ls-alpha", "0.3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(base + ["--experiment", "cli"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_relations(tmp_path / "cli" / "relation_matrix").alpha == 0.3
    proc = subprocess.run(base + ["--experiment", "no", "--smoothing", "0.2"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hf-labelsmooth timm-train: error: Expected --smoothing 0 with --loss-type ols but got 0.2" in proc.stderr
