"""A LabelSmoothingTrainer's card and files say what happened (issue 22, "Cards") and show the matrix (issue 24):
escaped sources, "fine-tuned from" a local folder, the matrix's training settings, the prior a student learned
from, the matrix in the root card, and the heatmap in TensorBoard."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import ConvNextForImageClassification

from hf_labelsmooth import ClassRelationMatrix, LabelSmoothingTrainer, load_relations
from hf_labelsmooth.relations.card_text import literal
from hf_labelsmooth.relations.provenance import content_sha256
from tests.support.trainer_digits import LABELS, DigitsDataset, digits_args, tiny_model

HOSTILE = "x\n---\nlibrary_name: evil\n---\n<script>alert(1)</script> | `code`"


def trainer_for(tmp_path: Path, method: str, model=None, n_train: int = 32, **kwargs) -> LabelSmoothingTrainer:
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("source_model", "dataset", "dataset_config")}
    args = digits_args(str(tmp_path / "out"), method, 16, **{"num_train_epochs": 1, **overrides})
    return LabelSmoothingTrainer(model=model if model is not None else tiny_model(), args=args,
                                 train_dataset=DigitsDataset(n_train), **kwargs)


def saved_card(trainer: LabelSmoothingTrainer) -> tuple[str, ModelCard]:
    trainer.save_model()
    trainer.create_model_card()
    text = (Path(trainer.args.output_dir) / "README.md").read_text()
    return text, ModelCard(text)


def test_base_model_and_dataset_are_escaped_in_both_card_sections(tmp_path: Path) -> None:
    """issue 22: the Trainer's section wrote base model and dataset raw (a folder name can hold | < and newlines)."""
    source = tmp_path / "vit|<img src=x onerror=alert(1)>\nnew"
    source.mkdir()
    text, card = saved_card(trainer_for(tmp_path, "ols", source_model=str(source), dataset=HOSTILE))
    assert card.data.library_name == "transformers" and card.data.base_model is None and not card.data.datasets
    assert text.count("\n---\n") == 1 and not re.search(r"(?<!\\)<(script|img)|(?<!\\)`code", text)
    assert "\nlibrary_name: evil" not in card.text
    assert f"| Dataset | {literal(HOSTILE)} |" in text and f"on the {literal(HOSTILE)} dataset." in text
    assert f"| Base model | fine-tuned from {literal(source.name)} (a local model folder, not on the Hub) |" in text


def test_a_fine_tune_of_a_local_folder_never_says_trained_from_scratch(tmp_path: Path) -> None:
    """issue 22: a MiniLM fine-tune's card said "This model was trained from scratch" for a local base model."""
    tiny_model().save_pretrained(tmp_path / "my-base")
    model = ConvNextForImageClassification.from_pretrained(tmp_path / "my-base")
    text, card = saved_card(trainer_for(tmp_path, "ls", model=model, dataset=str(tmp_path)))
    assert "trained from scratch" not in text and "[](https://huggingface.co/)" not in text
    assert ("This model is a fine-tuned version of my-base (a local model folder, not on the Hub) on the "
            f"{literal(tmp_path.name)} (local) dataset." in text)
    assert "| Base model | fine-tuned from my-base (a local model folder, not on the Hub) |" in text
    assert card.data.base_model is None  # a local folder is no Hub id


def test_a_model_built_from_a_config_says_trained_from_scratch(tmp_path: Path) -> None:
    text, card = saved_card(trainer_for(tmp_path, "ls"))
    assert "[](https://huggingface.co/)" not in text and "This model was trained from scratch on " in text
    assert "| Base model | none: trained from scratch |" in text and card.data.base_model is None


def test_a_hub_base_model_is_the_base_model_of_both_cards(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers would ask the Hub for the base model's license
    trainer = trainer_for(tmp_path, "lls", source_model="google/vit-base-patch16-224", dataset="beans")
    text, card = saved_card(trainer)
    matrix_card = ModelCard.load(tmp_path / "out" / "relation_matrix" / "README.md")
    assert card.data.base_model == matrix_card.data.base_model == "google/vit-base-patch16-224"
    assert card.data.datasets == matrix_card.data.datasets == ["beans"]
    assert card.data.library_name == "transformers" and matrix_card.data.library_name == "hf_labelsmooth"


def _train_lls(tmp_path: Path, name: str, **overrides) -> LabelSmoothingTrainer:
    trainer = trainer_for(tmp_path / name, "lls", **overrides)
    trainer.train()
    trainer.save_model()
    return trainer


def test_the_matrix_training_settings_are_in_its_config_card_and_the_model_config(tmp_path: Path) -> None:
    """issue 22: a default run and a relation_lr 1e-2 run could not be told apart from their files."""
    runs = {name: _train_lls(tmp_path, name, **kw) for name, kw in
            [("default", {"relation_lr": None}), ("slow", {"relation_lr": 1e-2})]}
    configs = {name: json.loads((Path(t.args.output_dir) / "relation_matrix" / "config.json").read_text())
               for name, t in runs.items()}
    applied = runs["default"].relation_optimizer.optimizer.param_groups[0]["initial_lr"]  # the default, from the run
    assert applied != 0.01
    assert configs["default"]["training"] == {"optimizer": "AdamW (Adam-like)", "relation_lr": applied,
                                              "relation_weight_decay": 0.0}
    assert configs["slow"]["training"]["relation_lr"] == 0.01
    card = (Path(runs["slow"].args.output_dir) / "relation_matrix" / "README.md").read_text()
    assert "| Matrix learning rate (`relation_lr`) | 0.01 |" in card
    model_config = json.loads((Path(runs["slow"].args.output_dir) / "config.json").read_text())
    assert model_config["hf_labelsmooth"] == {"method": "lls", "alpha": runs["slow"].relation_loss.alpha,
                                              "training": configs["slow"]["training"],
                                              "relation_matrix": "relation_matrix/"}
    ols = trainer_for(tmp_path / "ols", "ols", relation_update_every=2)
    ols.save_model()
    assert json.loads((tmp_path / "ols" / "out" / "relation_matrix" / "config.json").read_text())["training"] == \
        {"update_every": 2}


def test_a_relation_prior_student_names_its_prior_in_log_config_and_card(tmp_path: Path, caplog) -> None:
    """issue 22: a relation_prior student's card never named the matrix; no log line confirmed it was loaded."""
    prior = torch.full((10, 10), 1 / 9).fill_diagonal_(0.0)
    ClassRelationMatrix(prior, LABELS, method="ols").save_pretrained(tmp_path / "teacher-matrix")
    with caplog.at_level(logging.INFO, logger="hf_labelsmooth"):
        trainer = trainer_for(tmp_path, "relation_prior", relation_matrix=str(tmp_path / "teacher-matrix"))
    digest = content_sha256(load_relations(tmp_path / "teacher-matrix"))
    assert f"relation_prior learns from the ols matrix teacher-matrix (local) (K=10, sha256 {digest[:16]})" in \
        caplog.text
    trainer.train()
    text, _ = saved_card(trainer)
    record = {"source": "teacher-matrix (local)", "sha256": digest, "method": "ols"}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["hf_labelsmooth"]["training"] == \
        {"prior": record}
    assert f"| Prior matrix (`relation_prior`) | teacher\\-matrix (local) (sha256 {digest}) |".replace("\\-", "-") \
        in text
    assert not (tmp_path / "out" / "relation_matrix").exists()


def test_the_root_card_shows_the_matrix(tmp_path: Path) -> None:
    """issue 24: the Hub renders only the root README: it shows heatmap, strongest relations, method, reuse."""
    trainer = trainer_for(tmp_path, "lls", n_train=64, relation_lr=0.5)
    trainer.train()
    text, card = saved_card(trainer)
    assert "![Class-relation matrix heatmap (diagonal hidden)](relation_matrix/relation_matrix.png)" in text
    assert (tmp_path / "out" / "relation_matrix" / "relation_matrix.png").is_file()
    matrix = load_relations(tmp_path / "out")
    name, related = max(zip(matrix.label_names, matrix.top_related(3)), key=lambda r: r[1][0][1])
    row = f"| {name} |" + "".join(f" {other} ({p:.3f}) |" for other, p in related)
    assert row in text and "Learned with Learnable Label Smoothing (LLS), α = 0.1, over 10 classes" in text
    assert "--relation_matrix <this repo or folder>" in text and "hf-labelsmooth show" in text
    assert text.index("### The learned class-relation matrix") < text.index("## Model description")
    assert {"hf_labelsmooth", "label-smoothing", "lls"} <= set(card.data.tags)


def test_the_heatmap_is_logged_to_tensorboard_each_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = {}
    for every in (1, 0):
        trainer = trainer_for(tmp_path / str(every), "lls", num_train_epochs=2, report_to=["tensorboard"],
                              relation_heatmap_every=every)
        trainer.train()
        (event_file,) = Path(trainer.args.output_dir, "runs").glob("*/events.out.tfevents.*")
        events = EventAccumulator(str(event_file), size_guidance={"images": 0}).Reload()
        logs[every] = (events.Tags()["images"], events, trainer)
    tags, events, trainer = logs[1]
    assert tags == ["relation_matrix"] and logs[0][0] == []
    images = events.Images("relation_matrix")
    assert [image.step for image in images] == [2, 4]  # 32 samples / 16 per step: the two epoch ends
    assert all(image.encoded_image_string[:4] == b"\x89PNG" and image.width > 100 for image in images)


@pytest.mark.slow  # starts W&B's service process
def test_the_heatmap_is_logged_to_wandb_each_epoch(tmp_path: Path, monkeypatch) -> None:
    wandb = pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                        "WANDB_PROJECT": "cards"}.items():
        monkeypatch.setenv(name, value)
    trainer = trainer_for(tmp_path, "lls", num_train_epochs=2, report_to=["wandb"])
    try:
        trainer.train()
    finally:
        wandb.finish()
    images = list((tmp_path / "wandb").glob("offline-run-*/files/media/images/relation_matrix_*.png"))
    assert len(images) == 2 and all(image.read_bytes()[:4] == b"\x89PNG" for image in images)
