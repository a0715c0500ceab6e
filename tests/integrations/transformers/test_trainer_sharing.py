"""What a LabelSmoothingTrainer run saves and says about itself: best checkpoint's matrix, resume guard, model card."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from hf_labelsmooth import ClassRelationMatrix, LabelSmoothingTrainer, create_loss
from hf_labelsmooth.integrations.transformers.checkpoint import load_loss_state
from hf_labelsmooth.integrations.transformers.model_card import describe_source, hub_id, round_epochs
from hf_labelsmooth.metrics import classification_metrics
from tests.support.trainer_digits import DigitsDataset, digits_args, interrupted_then_resumed, tiny_model, train_digits


class StepCounter(TrainerCallback):
    count = 0

    def on_step_end(self, *args, **kwargs):
        self.count += 1


def card_metadata(readme: Path) -> dict:
    return yaml.safe_load(readme.read_text().split("---\n")[1])


@pytest.mark.slow
def test_load_best_model_at_end_saves_the_best_checkpoints_matrix(tmp_path: Path) -> None:
    trainer = LabelSmoothingTrainer(
        model=tiny_model(), train_dataset=DigitsDataset(128), eval_dataset=DigitsDataset(64, offset=1000),
        args=digits_args(str(tmp_path), "ols", 32, num_train_epochs=3, eval_strategy="epoch", save_strategy="epoch",
                         load_best_model_at_end=True, metric_for_best_model="nll", greater_is_better=True),
        compute_metrics=classification_metrics)
    trainer.train()
    best, last = trainer.state.best_model_checkpoint, str(tmp_path / "checkpoint-12")
    assert best is not None and Path(best).name != "checkpoint-12"  # the highest NLL: not the last epoch
    trainer.save_model()
    saved = ClassRelationMatrix.from_pretrained(tmp_path).matrix
    best_loss, last_loss = create_loss("ols", 10), create_loss("ols", 10)
    assert load_loss_state(best_loss, best) and load_loss_state(last_loss, last)
    assert torch.equal(saved, best_loss.relation_matrix())
    assert (saved - last_loss.relation_matrix()).abs().max() > 1e-3  # would be the last step's without the restore


def test_save_only_model_with_load_best_model_at_end_is_refused(tmp_path: Path) -> None:
    args = digits_args(str(tmp_path), "lls", 8, eval_strategy="epoch", save_strategy="epoch",
                       load_best_model_at_end=True, save_only_model=True)
    with pytest.raises(ValueError, match="Expected save_only_model=False .* Drop --save_only_model"):
        LabelSmoothingTrainer(model=tiny_model(), args=args, train_dataset=DigitsDataset(16),
                              eval_dataset=DigitsDataset(8))


def test_resuming_another_methods_checkpoint_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    train_digits(str(tmp_path), "ols", n_train=64, num_train_epochs=1, save_strategy="epoch")
    assert (tmp_path / "checkpoint-2" / "relation_loss.safetensors").is_file()
    trainer = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(64),
                                    args=digits_args(str(tmp_path), "lls", 32, num_train_epochs=2))
    steps = StepCounter()
    trainer.add_callback(steps)
    with pytest.raises(ValueError, match=r"from a 'lls' run but it holds the loss state of a 'ols' run\. .*train "
                                         r"into a new --output_dir") as info:
        trainer.train(resume_from_checkpoint=True)
    assert "delete" not in str(info.value)  # the good checkpoints stay
    assert steps.count == 0
    # the same output folder, as the training scripts find it (before loading any data or model)
    from run_image_classification import main

    monkeypatch.setattr(sys, "argv", ["run", "--config_name", "does-not-exist", "--dataset_name", "does-not-exist",
                                      "--output_dir", str(tmp_path), "--do_train", "--use_cpu",
                                      "--label_smoothing_method", "lspp", "--report_to", "none"])
    with pytest.raises(ValueError, match="'ols' run"):
        main()


def test_a_method_without_matrix_removes_a_stale_one(tmp_path: Path) -> None:
    ClassRelationMatrix.from_loss(create_loss("ols", 10), [str(i) for i in range(10)]).save_pretrained(
        tmp_path / "relation_matrix")
    trainer = LabelSmoothingTrainer(model=tiny_model(), args=digits_args(str(tmp_path), "ls", 8))
    trainer.save_model()
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "relation_matrix").exists()


@pytest.mark.parametrize("dataset", ["beans", "local"])
def test_model_card_names_method_alpha_data_and_links_the_matrix(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "digits").mkdir()
    data = "beans" if dataset == "beans" else str(tmp_path / "digits")
    trainer = LabelSmoothingTrainer(model=tiny_model(), args=digits_args(str(tmp_path / "out"), "lspp", 8,
                                                                         label_smoothing_alpha=0.2),
                                    source_model=str(tmp_path), dataset=data, dataset_config="default")
    trainer.save_model()
    trainer.create_model_card(tasks="image-classification")
    readme = tmp_path / "out" / "README.md"
    meta, text = card_metadata(readme), readme.read_text()
    assert {"hf_labelsmooth", "label-smoothing", "lspp"} <= set(meta["tags"])
    assert "base_model" not in meta  # a local model is not a Hub id
    assert meta.get("datasets") == (["beans"] if dataset == "beans" else None)
    described = "beans" if dataset == "beans" else "digits (local)"
    local_name = tmp_path.name.replace("_", "\\_")  # escaped Markdown text
    assert f"| Dataset | {described} |" in text
    assert f"| Base model | fine-tuned from {local_name} (a local model folder, not on the Hub) |" in text
    assert f"This model is a fine-tuned version of {local_name} (a local model folder, not on the Hub) on " in text
    assert "trained from scratch" not in text
    assert "| Loss (`--label_smoothing_method`) | lspp: Label Smoothing++ (LS++) |" in text
    assert "| α (mass moved off the one-hot) | 0.2 |" in text
    assert "[relation_matrix/](relation_matrix/README.md)" in text
    assert text.index("## Class-relation label smoothing") < text.index("## Model description")
    config = json.loads((tmp_path / "out" / "relation_matrix" / "config.json").read_text())
    assert (config["dataset"], config["source_model"]) == (described, f"{tmp_path.name} (local)")
    assert config["extra"] == {"dataset_config": "default"} and config["epochs"] == 0
    assert config["training"] == {}  # saved before train(): no matrix optimizer yet


def test_sources_are_hub_ids_or_local_folder_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "digits").mkdir(parents=True)
    assert describe_source("google/vit-base-patch16-224") == "google/vit-base-patch16-224"
    assert describe_source("data/digits") == describe_source(tmp_path / "data" / "digits") == "digits (local)"
    assert describe_source(None) is None and describe_source("") is None
    assert hub_id("beans") == "beans" and hub_id("digits (local)") is None and hub_id("none: from scratch") is None
    assert (round_epochs(2.9999999), round_epochs(2.6666666), round_epochs(None)) == (3, 2.67, None)


@pytest.mark.slow
def test_resuming_from_a_checkpoint_at_an_epoch_boundary_ends_where_the_full_run_does(tmp_path: Path) -> None:
    """Step checkpoints that close an epoch hold that epoch's OLS refresh (saved before the epoch-end event)."""
    full = train_digits(str(tmp_path / "full"), "ols", n_train=128, save_strategy="steps", save_steps=4)
    resumed = interrupted_then_resumed(str(tmp_path / "cut"), "ols", 32, 128, save_steps=4)  # 4 steps per epoch
    assert resumed.state.global_step == full.state.global_step == 8
    assert torch.allclose(resumed.relation_loss.relation_matrix(), full.relation_loss.relation_matrix(), atol=1e-5)
    for (name, a), b in zip(resumed.model.state_dict().items(), full.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    again = LabelSmoothingTrainer(model=tiny_model(seed=1), train_dataset=DigitsDataset(128),
                                  args=digits_args(str(tmp_path / "full"), "ols", 32, save_strategy="steps",
                                                   save_steps=4))
    again.train(resume_from_checkpoint=True)  # the finished run's last checkpoint: nothing left to train
    again.save_model(str(tmp_path / "final"))
    saved = ClassRelationMatrix.from_pretrained(tmp_path / "final").matrix
    assert torch.equal(saved, full.relation_loss.relation_matrix())
