"""``hf-labelsmooth show``: a local-looking argument never reaches the Hub, a Trainer checkpoint shows its matrix
(or says what it is), and a closed pipe ends the command quietly."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hf_labelsmooth import create_loss
from hf_labelsmooth.cli import main
from hf_labelsmooth.integrations.transformers.checkpoint import save_loss_state
from tests.support.launching import child_env


@pytest.fixture
def no_hub(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", refuse)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", refuse)


@pytest.mark.parametrize("name", ["out/digits-olss", "./digits", "out/digits-ols/checkpoint-9"])
def test_a_local_looking_argument_is_read_as_local_at_once(tmp_path, monkeypatch, capsys, no_hub, name) -> None:
    (tmp_path / "out" / "digits-ols").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["show", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hf-labelsmooth show: error: Expected a matrix folder, a saved model or a checkpoint but "
                          f"got {name!r}: no such local folder (read as local, not as a Hub repo).")
    assert "Folders in out: digits-ols." in err if name == "out/digits-olss" else True


def _checkpoint(tmp_path, method: str):
    run = tmp_path / "run"
    checkpoint = run / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    names = ["cat", "dog", "car"]
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "convnext", "num_labels": 3,
                                                         "id2label": dict(enumerate(names))}))
    loss = create_loss(method, num_classes=3, alpha=0.0 if method == "ce" else 0.2)
    with torch.no_grad():
        for p in loss.parameters():
            p.copy_(torch.tensor([[0.0, 2.0, -1.0], [1.5, 0.0, 0.0], [-2.0, 3.0, 0.0]]))
    save_loss_state(loss, checkpoint)
    return checkpoint, loss


def test_a_checkpoint_folder_shows_the_matrix_it_holds(tmp_path, capsys, no_hub) -> None:
    checkpoint, loss = _checkpoint(tmp_path, "lls")
    assert main(["show", str(checkpoint), "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("class-relation matrix: K=3, method=lls, alpha=0.2")
    matrix = loss.relation_matrix()
    for row, name in enumerate(["cat", "dog", "car"]):
        other = max((j for j in range(3) if j != row), key=lambda j: matrix[row, j])
        assert lines[2 + row].split() == [name, ["cat", "dog", "car"][other], f"({matrix[row, other]:.3f})"]


def test_a_checkpoint_of_a_run_without_a_matrix_says_what_it_is(tmp_path, capsys, no_hub) -> None:
    checkpoint, _ = _checkpoint(tmp_path, "ce")
    (checkpoint.parent / "relation_matrix").mkdir()
    assert main(["show", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "but got a Trainer checkpoint of a 'ce' run, which learns no matrix" in err
    (checkpoint / "relation_loss.safetensors").unlink()
    assert main(["show", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "but got a Trainer checkpoint without relation_loss.safetensors: its run learns no matrix" in err
    assert f"The run's final matrix: hf-labelsmooth show {checkpoint.parent}." in err


def test_a_closed_pipe_ends_quietly(tmp_path) -> None:
    checkpoint, _ = _checkpoint(tmp_path, "lls")
    proc = subprocess.Popen([sys.executable, "-m", "hf_labelsmooth.cli", "show", str(checkpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(tmp_path))
    proc.stdout.close()  # the reader is gone before anything is written (as `| head` after its lines)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0 and err == ""
