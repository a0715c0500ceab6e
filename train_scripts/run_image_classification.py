#!/usr/bin/env python
"""Fine-tune an image classifier with class-relation label smoothing (the CLI of transformers'
examples/pytorch/image-classification/run_image_classification.py, plus the `LabelSmoothingTrainingArguments`).

Examples::

    # a Hub model on a Hub dataset, pushed with its learned matrix to the Hub
    python train_scripts/run_image_classification.py --model_name_or_path google/vit-base-patch16-224-in21k \
        --dataset_name beans --label_column_name labels --label_smoothing_method ols --output_dir out \
        --do_train --do_eval --push_to_hub --hub_model_id me/vit-beans-ols
    # offline: a small ConvNeXt from a config, on a local image folder (data/digits/{train,validation}/<class>/*.png)
    python train_scripts/run_image_classification.py --config_name train_scripts/configs/convnext-digits \
        --dataset_name data/digits --label_smoothing_method lls --output_dir out --do_train --do_eval --use_cpu

timm models loaded through transformers (``timm/...`` Hub ids, `TimmWrapperForImageClassification`) use their
image processor's own `train_transforms` / `val_transforms`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torchvision.transforms import (CenterCrop, Compose, Lambda, Normalize, RandomHorizontalFlip,
                                    RandomResizedCrop, Resize, ToTensor)
from transformers import AutoImageProcessor, AutoModelForImageClassification, set_seed

from hf_labelsmooth.exits import run_main
from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from hf_labelsmooth.metrics.classification import classification_metrics
from _hf_data import check_column, class_names, data_source, load_imagefolder, load_named
from _hf_run import (ModelArguments, check_push_access, finish, load_model, load_processor, parse_arguments,
                     resolve_checkpoint, setup_logging, train_and_evaluate, trainer_sources)

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on."""

    dataset_name: str | None = field(default=None, metadata={
        "help": "A Hub dataset id, or a local image folder (DIR/{train,validation}/<class>/*.png), via "
                "datasets.load_dataset."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_from_disk: str | None = field(default=None, metadata={"help": "A dataset saved with save_to_disk."})
    train_dir: str | None = field(default=None, metadata={"help": "Training images: train_dir/<class>/*.png."})
    validation_dir: str | None = field(default=None, metadata={"help": "Validation images: validation_dir/<class>/*."})
    train_val_split: float | None = field(default=0.15, metadata={"help": "Validation fraction if no validation "
                                                                          "split is given."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    augment: bool = field(default=True, metadata={"help": "Random resized crop + flip in training (as HF's script)."})


@dataclass
class ImageModelArguments(ModelArguments):
    image_processor_name: str | None = field(default=None, metadata={"help": "Image processor name or path."})


def load_data(data_args: DataTrainingArguments, model_args: ModelArguments):
    """The DatasetDict with a ``validation`` split (split off `train_val_split` when none is given)."""
    dataset = load_named(data_args.dataset_name, data_args.dataset_config_name, data_args.dataset_from_disk,
                         model_args.cache_dir, model_args.token)
    if dataset is None:
        dataset = load_imagefolder(data_args.train_dir, data_args.validation_dir, model_args.cache_dir)
    if "validation" not in dataset and "train" in dataset and data_args.train_val_split:
        split = dataset["train"].train_test_split(data_args.train_val_split, seed=0)
        dataset["train"], dataset["validation"] = split["train"], split["test"]
    check_column(dataset, data_args.image_column_name, "--image_column_name")
    check_column(dataset, data_args.label_column_name, "--label_column_name")
    return dataset


def build_transforms(processor, augment: bool) -> tuple:
    """(train, eval) transforms: a timm processor's own, else torchvision's from the processor's size and stats."""
    if hasattr(processor, "train_transforms") and hasattr(processor, "val_transforms"):  # TimmWrapperImageProcessor
        return (processor.train_transforms if augment else processor.val_transforms), processor.val_transforms
    size = processor.size.get("shortest_edge") or (processor.size["height"], processor.size["width"])
    crop = size if isinstance(size, tuple) else (size, size)
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    normalize = Normalize(mean, std) if mean and std else Lambda(lambda x: x)
    train = [RandomResizedCrop(crop), RandomHorizontalFlip()] if augment else [Resize(crop)]
    return Compose([*train, ToTensor(), normalize]), Compose([Resize(crop), CenterCrop(crop), ToTensor(), normalize])


def image_mode(config, processor) -> str:
    """PIL mode of the model's input: "L" for one channel (config, or a timm processor's input size), else "RGB"."""
    channels = getattr(config, "num_channels", None)
    if channels is None:
        channels = (getattr(processor, "data_config", None) or {}).get("input_size", (3,))[0]
    return "L" if channels == 1 else "RGB"


def collate_fn(examples: list[dict]) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["labels"] for e in examples])}


def make_transform(tf, data_args: DataTrainingArguments, mode: str):
    """Batch transform for `set_transform`: PIL images → normalised tensors, labels → ``labels``."""
    def apply(batch):
        return {"pixel_values": [tf(img.convert(mode)) for img in batch[data_args.image_column_name]],
                "labels": batch[data_args.label_column_name]}
    return apply


def select_splits(dataset, data_args: DataTrainingArguments, seed: int):
    """(train, validation) after the optional `max_*_samples` truncation."""
    train, evaluation = dataset.get("train"), dataset.get("validation")
    if train is not None and data_args.max_train_samples is not None:
        train = train.shuffle(seed=seed).select(range(min(data_args.max_train_samples, len(train))))
    if evaluation is not None and data_args.max_eval_samples is not None:
        evaluation = evaluation.shuffle(seed=seed).select(range(min(data_args.max_eval_samples, len(evaluation))))
    return train, evaluation


def main() -> dict[str, float]:
    model_args, data_args, training_args = parse_arguments(
        (ImageModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    setup_logging(training_args)
    check_push_access(training_args)
    checkpoint = resolve_checkpoint(training_args)
    training_args.remove_unused_columns = False  # set_transform reads the raw image column
    set_seed(training_args.seed)
    dataset = load_data(data_args, model_args)
    names = class_names(dataset, data_args.label_column_name)
    model = load_model(AutoModelForImageClassification, model_args, names, "image-classification")
    processor = load_processor(AutoImageProcessor, model_args.image_processor_name, model_args)
    train_tf, eval_tf = build_transforms(processor, data_args.augment)
    mode = image_mode(model.config, processor)
    train, evaluation = select_splits(dataset, data_args, training_args.seed)
    for split, tf in ((train, train_tf), (evaluation, eval_tf)):
        if split is not None:
            split.set_transform(make_transform(tf, data_args, mode))
    source = data_source(data_args.dataset_name, data_args.dataset_from_disk, data_args.train_dir,
                         data_args.validation_dir)
    trainer = LabelSmoothingTrainer(model=model, args=training_args,
                                    train_dataset=train if training_args.do_train else None,
                                    eval_dataset=evaluation if training_args.do_eval else None,
                                    compute_metrics=classification_metrics, processing_class=processor,
                                    data_collator=collate_fn,
                                    **trainer_sources(model_args, source, data_args.dataset_config_name))
    metrics = train_and_evaluate(trainer, training_args, checkpoint)
    finish(trainer, training_args, "image-classification", ["vision"])
    return metrics


if __name__ == "__main__":
    run_main(main, script=__file__)
