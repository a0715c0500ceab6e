#!/usr/bin/env python
"""Fine-tune an image classifier with class-relation label smoothing (CLI of HF's run_image_classification.py).

Example (local image folders, one subfolder per class)::

    python train_scripts/run_image_classification.py --model_name_or_path ./my-convnext \
        --train_dir data/train --validation_dir data/val --output_dir out --do_train --do_eval \
        --label_smoothing_method lls --num_train_epochs 3 --use_cpu
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torchvision.transforms import (CenterCrop, Compose, Lambda, Normalize, RandomHorizontalFlip,
                                    RandomResizedCrop, Resize, ToTensor)
from transformers import (AutoConfig, AutoImageProcessor, AutoModelForImageClassification, HfArgumentParser,
                          set_seed)

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from _hf_data import load_imagefolder
from hf_labelsmooth.metrics.classification import compute_accuracy
from _hf_run import label_maps, setup_logging, train_and_evaluate

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on (local folders: no Hub downloads)."""

    dataset_name: str | None = field(default=None, metadata={"help": "A local dataset saved with save_to_disk."})
    train_dir: str | None = field(default=None, metadata={"help": "Training images: train_dir/class/*.png."})
    validation_dir: str | None = field(default=None, metadata={"help": "Validation images: validation_dir/class/*."})
    train_val_split: float | None = field(default=0.15, metadata={"help": "Validation fraction if no validation_dir."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    augment: bool = field(default=True, metadata={"help": "Random resized crop + flip in training (as HF's script)."})


@dataclass
class ModelArguments:
    """Which model, config and image processor to start from."""

    model_name_or_path: str = field(metadata={"help": "Local model directory (or cached Hub id)."})
    config_name: str | None = field(default=None, metadata={"help": "Config name or path if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models."})
    model_revision: str = field(default="main", metadata={"help": "Model revision."})
    image_processor_name: str | None = field(default=None, metadata={"help": "Image processor name or path."})
    token: str | None = field(default=None, metadata={"help": "Hub token."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Re-initialise a head of another size."})


def load_data(data_args: DataTrainingArguments, cache_dir: str | None):
    """The DatasetDict with a ``validation`` split (split off `train_val_split` when none is given)."""
    if data_args.dataset_name is not None:
        from datasets import load_from_disk

        dataset = load_from_disk(data_args.dataset_name)
    else:
        dataset = load_imagefolder(data_args.train_dir, data_args.validation_dir, cache_dir)
    if "validation" not in dataset and data_args.train_val_split:
        split = dataset["train"].train_test_split(data_args.train_val_split, seed=0)
        dataset["train"], dataset["validation"] = split["train"], split["test"]
    return dataset


def build_transforms(processor, augment: bool) -> tuple[Compose, Compose]:
    """(train, eval) torchvision transforms from the image processor's size and normalisation."""
    size = processor.size.get("shortest_edge") or (processor.size["height"], processor.size["width"])
    crop = size if isinstance(size, tuple) else (size, size)
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    normalize = Normalize(mean, std) if mean and std else Lambda(lambda x: x)
    train = [RandomResizedCrop(crop), RandomHorizontalFlip()] if augment else [Resize(crop)]
    return Compose([*train, ToTensor(), normalize]), Compose([Resize(crop), CenterCrop(crop), ToTensor(), normalize])


def collate_fn(examples: list[dict]) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["labels"] for e in examples])}


def make_transform(tf: Compose, data_args: DataTrainingArguments, mode: str):
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
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    setup_logging(training_args)
    training_args.remove_unused_columns = False  # set_transform reads the raw image column
    set_seed(training_args.seed)
    dataset = load_data(data_args, model_args.cache_dir)
    names = dataset["train"].features[data_args.label_column_name].names
    label2id, id2label = label_maps(names)
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token,
           "trust_remote_code": model_args.trust_remote_code}
    config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path, num_labels=len(names),
                                        label2id=label2id, id2label=id2label, finetuning_task="image-classification",
                                        **hub)
    model = AutoModelForImageClassification.from_pretrained(
        model_args.model_name_or_path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub)
    processor = AutoImageProcessor.from_pretrained(model_args.image_processor_name or model_args.model_name_or_path,
                                                   **hub)
    train_tf, eval_tf = build_transforms(processor, data_args.augment)
    mode = "L" if getattr(config, "num_channels", 3) == 1 else "RGB"
    train, evaluation = select_splits(dataset, data_args, training_args.seed)
    for split, tf in ((train, train_tf), (evaluation, eval_tf)):
        if split is not None:
            split.set_transform(make_transform(tf, data_args, mode))
    trainer = LabelSmoothingTrainer(model=model, args=training_args,
                                    train_dataset=train if training_args.do_train else None,
                                    eval_dataset=evaluation if training_args.do_eval else None,
                                    compute_metrics=compute_accuracy, processing_class=processor,
                                    data_collator=collate_fn)
    return train_and_evaluate(trainer, training_args)


if __name__ == "__main__":
    main()
