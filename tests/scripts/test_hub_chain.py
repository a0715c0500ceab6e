"""The chain a user runs, against the local Hub stand-in: train with a script and --push_to_hub, reuse the pushed
matrix by repo id in a second run, and show it; plus the Hub lookup of a model repo's relation_matrix/."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load

from tests.support.hub_server import RecordingHub
from tests.support.digits import DIGIT_NAMES, write_digits_imagefolder
from tests.support.paths import CONFIGS, SCRIPTS

TRAIN = ["--do_train", "--do_eval", "--use_cpu", "--report_to", "none", "--save_strategy", "no", "--seed", "0",
         "--disable_tqdm", "True", "--num_train_epochs", "2", "--per_device_train_batch_size", "16",
         "--learning_rate", "3e-3", "--augment", "False", "--log_level", "warning"]


def hub_env(hub: RecordingHub, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test_token", "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def pushed_files(hub: RecordingHub, repo_id: str) -> dict[str, bytes]:
    """The repo's files as of its last commit (each commit of upload_folder carries the whole folder)."""
    return [c for c in hub.commits if c["repo_id"] == repo_id][-1]["files"]


def check_pushed_commit(files: dict[str, bytes], out: Path) -> bytes:
    """The last commit holds model, matrix and card; the card and config name method, alpha, data and model."""
    assert {"config.json", "model.safetensors", "README.md", "relation_matrix/config.json",
            "relation_matrix/relation_matrix.safetensors", "relation_matrix/README.md"} <= set(files)
    local = (out / "relation_matrix" / "relation_matrix.safetensors").read_bytes()
    assert files["relation_matrix/relation_matrix.safetensors"] == local  # the final matrix, in the same commit
    config = json.loads(files["relation_matrix/config.json"])
    assert (config["method"], config["alpha"], config["epochs"]) == ("ols", 0.5, 2)
    assert config["dataset"] == "digits (local)"
    assert config["source_model"] == "none: trained from scratch from the config convnext-digits (local)"
    card = files["README.md"].decode()
    assert "| Loss (`--label_smoothing_method`) | ols: Online Label Smoothing (OLS) |" in card
    assert "| α (mass moved off the one-hot) | 0.5 (" in card and "| Dataset | digits (local) |" in card
    assert "[relation_matrix/](relation_matrix/README.md)" in card
    assert "| Base model | none: trained from scratch from the config convnext-digits (local) |" in card
    assert "This model was trained from scratch on " in card
    assert "--relation_matrix alice/digits-ols" in card
    assert "\ndatasets:" not in card.split("\n---\n")[0] and "imagefolder" not in card  # local data: no Hub id
    assert 'load_relations("alice/digits-ols")' in files["relation_matrix/README.md"].decode()
    return local


@pytest.mark.slow
def test_train_push_reuse_and_show_by_repo_id(tmp_path: Path) -> None:
    write_digits_imagefolder(tmp_path / "digits", 10, 5, size=32, names=DIGIT_NAMES)
    script = str(SCRIPTS / "run_image_classification.py")
    with RecordingHub() as hub:
        env = hub_env(hub, tmp_path)
        run([script, *TRAIN, "--config_name", str(CONFIGS / "convnext-digits"), "--dataset_name", "digits",
             "--label_smoothing_method", "ols", "--output_dir", "first", "--push_to_hub", "--hub_model_id",
             "alice/digits-ols", "--save_strategy", "epoch", "--hub_always_push"], env, tmp_path)
        local = check_pushed_commit(pushed_files(hub, "alice/digits-ols"), tmp_path / "first")
        summaries = [c["header"]["summary"] for c in hub.commits]
        assert summaries[:2] == ["Training in progress, epoch 1", "Training in progress, epoch 2"]
        for commit in hub.commits:  # every pushed state of the repo pairs the model with a matrix
            assert {"model.safetensors", "relation_matrix/relation_matrix.safetensors"} <= set(commit["files"])

        second = run([script, "--config_name", str(CONFIGS / "convnext-digits"), "--dataset_name", "digits",
                      "--relation_matrix", "alice/digits-ols", "--output_dir", "second", *TRAIN], env, tmp_path)
        assert ("GET", "/alice/digits-ols/resolve/main/relation_matrix/relation_matrix.safetensors") in hub.requests
        state = json.loads((tmp_path / "second" / "trainer_state.json").read_text())
        assert state["log_history"][-1]["train_loss"] > 0, second.stdout[-1000:]
        assert not (tmp_path / "second" / "relation_matrix").exists()  # a fixed prior learns nothing new

        shown = run(["-m", "hf_labelsmooth.cli", "show", "alice/digits-ols", "--top", "2"], env, tmp_path)
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("class-relation matrix: K=10, method=ols, alpha=0.5")
    matrix = load(local)["relation_matrix"].fill_diagonal_(-1)
    best = [int(i) for i in matrix.argmax(-1)]
    rows = [line.split() for line in lines[2:12]]
    assert [r[0] for r in rows] == [str(d) for d in range(10)]
    assert all(r[1] == str(best[d]) or r[1] == "(uniform" for d, r in enumerate(rows))


SCRIPT = """
import sys
from huggingface_hub import HfApi
from hf_labelsmooth import ClassRelationMatrix
from hf_labelsmooth.cli import main
api = HfApi()
api.create_repo("alice/model-with-matrix")
api.upload_folder(repo_id="alice/model-with-matrix", folder_path=sys.argv[1])
api.create_repo("alice/model-without-matrix")
api.upload_folder(repo_id="alice/model-without-matrix", folder_path=sys.argv[1], ignore_patterns=["relation_matrix/*"])
m = ClassRelationMatrix.from_pretrained("alice/model-with-matrix", cache_dir=sys.argv[2])
print("LOADED", m.method, m.label_names)
from hf_labelsmooth.integrations.timm.options import LaunchOptions
options = LaunchOptions(loss_type="relation_prior", relation_matrix="alice/model-with-matrix")
prior = options.relation_options().build(3, ["a", "b", "c"])
print("TIMM", type(prior).__name__)
try:
    ClassRelationMatrix.from_pretrained("alice/model-without-matrix", cache_dir=sys.argv[2])
except FileNotFoundError as err:
    print("ERROR", err)
sys.exit(main(["show", "alice/model-without-matrix"]))
"""


def test_a_model_repo_resolves_to_its_relation_matrix_folder(tmp_path: Path) -> None:
    from hf_labelsmooth import ClassRelationMatrix, create_loss

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "convnext", "num_labels": 3}))
    ClassRelationMatrix.from_loss(create_loss("ols", 3), ["a", "b", "c"]).save_pretrained(model / "relation_matrix")
    with RecordingHub() as hub:
        result = subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(tmp_path / "cache"),
                                 str(SCRIPTS)],
                                env=hub_env(hub, tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "LOADED ols ['a', 'b', 'c']" in result.stdout
    assert "TIMM RelationPrior" in result.stdout  # timm-train's --relation-matrix takes the model repo too
    message = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert "'alice/model-without-matrix'" in message and "(ce, ls, " in message
    assert "Only lls, lspp, ols learn one" in message
    assert "hf-labelsmooth show: error: Expected a class-relation matrix in Hub repo" in result.stderr
    fetched = [p for m, p in hub.requests if "/resolve/" in p]
    assert "/alice/model-with-matrix/resolve/main/relation_matrix/relation_matrix.safetensors" in fetched
