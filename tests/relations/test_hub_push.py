"""push_to_hub / from_pretrained(repo_id) against a local HTTP stand-in for the Hub (HF_ENDPOINT set before import)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load

from tests.support.hub_server import RecordingHub

SCRIPT = """
import sys, torch
from hf_labelsmooth import ClassRelationMatrix, create_loss
loss = create_loss("lls", 3, alpha=0.25)
with torch.no_grad():
    loss.logits.copy_(torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [-2.0, 0.0, 0.0]]))
crm = ClassRelationMatrix.from_loss(loss, ["low", "mid", "high"], source_model="tiny-cnn", dataset="toy", epochs=2)
print("COMMIT", crm.push_to_hub("alice/toy-lls", commit_message="add matrix").oid)
back = ClassRelationMatrix.from_pretrained("alice/toy-lls", cache_dir=sys.argv[1])
print("LOADED", back.label_names, back.method, back.logits_kind, bool(torch.equal(back.matrix, crm.matrix)))
"""
Q = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [-2.0, 0.0, 0.0]])


def run_against(hub: RecordingHub, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test_token", "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cache")], env=env, capture_output=True,
                          text=True, timeout=120)


def test_push_is_one_commit_with_the_saved_files_and_loads_back(tmp_path):
    with RecordingHub() as hub:
        result = run_against(hub, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit["repo_id"] == "alice/toy-lls" and commit["header"]["summary"] == "add matrix"
    assert sorted(commit["files"]) == ["README.md", "config.json", "relation_matrix.png", "relation_matrix.safetensors"]
    tensors = load(commit["files"]["relation_matrix.safetensors"])
    assert torch.allclose(tensors["relation_matrix"], Q.softmax(-1), atol=1e-7) and torch.equal(tensors["logits"], Q)
    config = json.loads(commit["files"]["config.json"])
    assert config["label_names"] == ["low", "mid", "high"] and config["alpha"] == 0.25
    assert (config["method"], config["source_model"], config["epochs"]) == ("lls", "tiny-cnn", 2)
    card = commit["files"]["README.md"].decode()
    assert 'load_relations("alice/toy-lls")' in card and "| low | mid (" in card
    assert commit["files"]["relation_matrix.png"][:4] == b"\x89PNG"
    assert f"COMMIT {1:040x}" in result.stdout
    assert "LOADED ['low', 'mid', 'high'] lls softmax True" in result.stdout
    downloads = sorted({path.rsplit("/", 1)[-1] for method, path in hub.requests if "/resolve/" in path})
    assert downloads == ["config.json", "relation_matrix.safetensors"]  # the card and PNG are never fetched
    assert ("POST", "/api/repos/create") in hub.requests
