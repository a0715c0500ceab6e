"""``hf-labelsmooth timm-train --push-to-hub``: one commit with what timm.models.push_to_hf_hub uploads (loadable by
``timm.create_model("hf-hub:...", pretrained=True)``) plus relation_matrix/ and a root card that shows the matrix;
cards name a local data folder as local, never as a Hub dataset (issue 22), and record the matrix's training."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from hf_labelsmooth.optim import default_relation_lr
from hf_labelsmooth.integrations.timm.launcher import LaunchError, LaunchOptions
from tests.support.digits import write_digits_imagefolder
from tests.support.hub_server import RecordingHub
from tests.support.paths import subprocess_env, timm_train_py

TRAIN_PY = timm_train_py()
REPO = "alice/digits-lls"
SCRIPT = """
import json, sys, torch, timm
from hf_labelsmooth.integrations.timm.launcher import launch
from hf_labelsmooth.integrations.timm.sharing import unwrap_network
result = launch(sys.argv[1], sys.argv[3:])
pushed = timm.create_model("hf-hub:" + sys.argv[2], pretrained=True)
trained = unwrap_network(result.task).state_dict()
same = pushed.state_dict().keys() == trained.keys() and all(torch.equal(v, trained[k])
                                                             for k, v in pushed.state_dict().items())
print("LOADED", json.dumps({"same": same, "num_classes": pushed.num_classes,
                            "label_names": pushed.pretrained_cfg.get("label_names")}))
"""


def hub_env(hub: RecordingHub, tmp_path: Path) -> dict[str, str]:
    env = subprocess_env(HF_ENDPOINT=hub.url, HF_TOKEN="hf_test_token", HF_HOME=str(tmp_path / "hf_home"),
                         HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    env.pop("HF_HUB_OFFLINE", None)
    return env


def card_metadata(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.slow
@pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")
def test_push_uploads_a_timm_loadable_model_with_its_matrix_and_card(tmp_path: Path) -> None:
    classes = write_digits_imagefolder(tmp_path / "digits", train_per_class=12, val_per_class=4)
    args = ["--data-dir", str(tmp_path / "digits"), "--output", str(tmp_path / "runs"), "--experiment", "lls",
            "--device", "cpu", "--model", "test_efficientnet_gn", "--num-classes", "10", "--img-size", "16",
            "--crop-pct", "1.0", "--warmup-epochs", "0", "--workers", "0", "-b", "24", "--opt", "adamw",
            "--lr", "0.003", "--epochs", "1", "--no-aug", "--loss-type", "lls", "--push-to-hub", REPO]
    with RecordingHub() as hub:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(TRAIN_PY), REPO, *args], env=hub_env(hub, tmp_path),
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = json.loads(proc.stdout.split("LOADED ", 1)[1])
    assert loaded == {"same": True, "num_classes": 10, "label_names": classes}
    (commit,) = hub.commits  # one commit: model, matrix and card together
    assert commit["repo_id"] == REPO and sorted(commit["files"]) == [
        "README.md", "config.json", "model.safetensors", "relation_matrix/README.md", "relation_matrix/config.json",
        "relation_matrix/relation_matrix.png", "relation_matrix/relation_matrix.safetensors"]  # no pickle
    config = json.loads(commit["files"]["config.json"])
    lr = default_relation_lr(torch.optim.AdamW, 0.003, total_steps=5)  # 120 images / batch 24 x 1 epoch = 5 steps
    training = {"optimizer": "AdamW (Adam-like)", "relation_lr": lr, "relation_weight_decay": 0.0,
                "architecture": "test_efficientnet_gn"}
    assert config["hf_labelsmooth"] == {"method": "lls", "alpha": 0.1, "training": training,
                                        "relation_matrix": "relation_matrix/"}
    matrix_config = json.loads(commit["files"]["relation_matrix/config.json"])
    assert matrix_config["training"] == training and matrix_config["dataset"] == "digits (local)"
    assert matrix_config["source_model"] is None  # trained from scratch: no base model
    root = commit["files"]["README.md"].decode()
    card = ModelCard(root)
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-classification"
    assert card.data.base_model is None and card.data.datasets is None
    assert f'timm.create_model("hf-hub:{REPO}", pretrained=True)' in root
    assert "![Class-relation matrix heatmap (diagonal hidden)](relation_matrix/relation_matrix.png)" in root
    assert "| Base model | none: trained from scratch |" in root and "| Dataset | digits (local) |" in root
    assert f"--relation-matrix {REPO}" in root
    assert "datasets" not in card_metadata(commit["files"]["relation_matrix/README.md"].decode())  # issue 22
    assert (tmp_path / "runs" / "lls" / "README.md").read_text().startswith("---\n")  # the local root card


def test_push_to_hub_takes_a_repo_id_and_a_relation_loss() -> None:
    with pytest.raises(LaunchError, match="Expected --push-to-hub to be a Hub repo id"):
        LaunchOptions(loss_type="lls", push_to_hub="/tmp/not a repo").check()
    assert LaunchOptions(loss_type="lls", push_to_hub=REPO, hub_private=True).relation_flags_set() == \
        ["--push-to-hub", "--hub-private"]


@pytest.mark.slow
@pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")
def test_log_wandb_gets_the_heatmap_each_epoch(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    write_digits_imagefolder(tmp_path / "digits", train_per_class=6, val_per_class=2)
    args = ["--data-dir", str(tmp_path / "digits"), "--output", str(tmp_path / "runs"), "--device", "cpu", "--model",
            "test_efficientnet_gn", "--num-classes", "10", "--img-size", "16", "--crop-pct", "1.0",
            "--warmup-epochs", "0", "--workers", "0", "-b", "20", "--epochs", "2", "--no-aug", "--loss-type", "ols",
            "--log-wandb", "--wandb-project", "cards"]
    env = subprocess_env(WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "hf_labelsmooth.cli", "timm-train", str(TRAIN_PY), *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    images = sorted(p.name.split("_")[2] for p in
                    (tmp_path / "wandb").glob("offline-run-*/files/media/images/relation_matrix_*.png"))
    assert images == ["0", "1"]  # one per epoch, in the step of that epoch's metrics


def test_timm_sources_are_hub_ids_or_marked_local() -> None:
    """issue 22: the launcher put a local folder name into the card's datasets: metadata."""
    from argparse import Namespace

    from hf_labelsmooth.integrations.timm.sharing import describe_dataset, describe_model

    class Pretrained:
        pretrained_cfg = {"hf_hub_id": "timm/resnet18.a1_in1k"}

    assert describe_dataset(Namespace(dataset="hfds/beans", data_dir="/data")) == "beans"
    assert describe_dataset(Namespace(dataset="", data_dir="/data/my digits/")) == "my digits (local)"
    assert describe_dataset(Namespace(dataset="torch/cifar10", data_dir=None)) == "cifar10 (torch dataset)"
    assert describe_model(Namespace(pretrained=True, pretrained_path=None, initial_checkpoint=""), Pretrained()) == \
        "timm/resnet18.a1_in1k"
    assert describe_model(Namespace(pretrained=False, pretrained_path=None, initial_checkpoint="/ck/best.pth"),
                          None) == "best.pth (local)"
    assert describe_model(Namespace(pretrained=False, pretrained_path=None, initial_checkpoint=""), None) is None


def test_timm_root_card_metadata_and_escaping() -> None:
    from hf_labelsmooth.integrations.timm.sharing import TimmCardFacts, render_root_card

    hostile = "x\n---\nlibrary_name: evil\n<script>alert(1)</script>"
    hub = ModelCard(render_root_card(TimmCardFacts("resnet18", "ols", 0.1, "timm/resnet18.a1_in1k", "beans", 3),
                                     REPO))
    assert (hub.data.base_model, hub.data.datasets, hub.data.library_name) == ("timm/resnet18.a1_in1k", ["beans"],
                                                                              "timm")
    assert "| Base model | fine-tuned from [timm/resnet18.a1_in1k](https://huggingface.co/timm/resnet18.a1_in1k) |" \
        in hub.text
    text = render_root_card(TimmCardFacts(hostile, hostile, 0.1, hostile, hostile, 3), hostile)
    card = ModelCard(text)
    assert card.data.base_model is None and card.data.datasets is None and card.data.library_name == "timm"
    assert text.count("\n---\n") == 1 and "<script>" not in text and "\nlibrary_name: evil" not in card.text
    assert "<hf-hub:user/repo>" in text  # no repo id: the snippet quotes none
