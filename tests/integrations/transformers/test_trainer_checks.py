"""LabelSmoothingTrainer refuses what it cannot train before the first step: problem types, out-of-range labels."""
from __future__ import annotations

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value
from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model
from transformers import TrainerCallback

from hf_labelsmooth import LabelSmoothingTrainer

K = 10


class CountSteps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def digits_table(labels: list[int], feature: Value | ClassLabel | None = None) -> Dataset:
    """A `datasets.Dataset` of digit images (as float lists) with the given labels."""
    pixels = DigitsDataset(len(labels)).pixels.numpy().tolist()
    return Dataset.from_dict({"pixel_values": pixels, "labels": labels},
                             features=Features({"pixel_values": Sequence(Sequence(Sequence(Value("float32")))),
                                                "labels": feature or Value("int64")}))


def trainer_for(tmp_path, train, eval_dataset=None, method="ols", **model_config) -> LabelSmoothingTrainer:
    model = tiny_model()
    for key, value in model_config.items():
        setattr(model.config, key, value)
    return LabelSmoothingTrainer(model=model, args=digits_args(str(tmp_path), method, 8, num_train_epochs=1),
                                 train_dataset=train, eval_dataset=eval_dataset, callbacks=[CountSteps()])


@pytest.mark.parametrize("problem_type", ["multi_label_classification", "regression"])
def test_other_problem_types_are_refused_by_name(tmp_path, problem_type: str) -> None:
    with pytest.raises(ValueError, match=f"single-label classifier .* but got problem_type='{problem_type}'"):
        trainer_for(tmp_path, DigitsDataset(8), problem_type=problem_type)


def test_out_of_range_labels_are_refused_before_the_first_step(tmp_path) -> None:
    labels = [i % K for i in range(40)]
    labels[37] = K  # would arrive in the 5th batch
    trainer = trainer_for(tmp_path, digits_table(labels))
    with pytest.raises(ValueError, match=r"labels in \[0, num_labels=10\) but the train dataset's 'labels' column "
                                         r"holds values in \[0, 10\]"):
        trainer.train()
    counter = next(c for c in trainer.callback_handler.callbacks if isinstance(c, CountSteps))
    assert counter.steps == 0 and trainer.state.global_step == 0


def test_ignore_index_and_class_label_datasets_are_checked(tmp_path) -> None:
    names = ClassLabel(names=[str(i) for i in range(12)])
    trainer = trainer_for(tmp_path, digits_table([0, 1, 11, 2], names))
    with pytest.raises(ValueError, match=r"holds values in \[0, 11\]"):
        trainer.train()
    trainer = trainer_for(tmp_path, digits_table([0, 1, 2, 3]), {"val": digits_table([0, -100, 2, 3])})
    with pytest.raises(ValueError, match=r"eval\[val\] dataset's 'labels' column holds values in \[-100, 3\].*-100"):
        trainer.train()


def test_in_range_selection_trains(tmp_path) -> None:
    full = digits_table([i % K for i in range(16)] + [K])
    trainer = trainer_for(tmp_path, full.select(range(16)))  # the bad row is not selected
    trainer.train()
    assert trainer.state.global_step == 2


def test_missing_labels_message_names_the_column_not_label_names(tmp_path) -> None:
    trainer = trainer_for(tmp_path, DigitsDataset(8))
    match = "Expected a 'labels' entry .* Name the dataset's label column 'labels'"
    with pytest.raises(ValueError, match=match) as info:
        trainer.compute_loss(trainer.model, {"pixel_values": torch.zeros(2, 1, 16, 16)})
    assert "label_names" not in str(info.value)
