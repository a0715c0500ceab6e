#!/usr/bin/env python
"""Stochastic Label Refinery (docs/methods.md "soft_kl") for an image or text training set, then a final model.

Each round trains `k` models (Hugging Face Trainer or a timm loop) on k-1 folds against the current soft labels,
predicts the held-out fold and sets L ← (n·L + P)/(n+1). Labels are checkpointed in OUTPUT_DIR/slr after every
round (``state.json`` + ``round_XXX``, a one-column dataset); rerunning the same command resumes there.

Examples (local data only)::

    python train_scripts/run_slr.py --train_dir data/train --timm_model resnet18 --backend timm \
        --k 5 --n 3 --rounds 3 --variant slr-a --num_train_epochs 5 --output_dir out --use_cpu
    python train_scripts/run_slr.py --train_file train.csv --text_column_name text --label_column_name label \
        --model_name_or_path ./my-bert --k 5 --rounds 2 --output_dir out --use_cpu
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import SaveStrategy

from hf_labelsmooth.exits import run_main
from hf_labelsmooth.slr import HFTrainerSLRAdapter, StochasticLabelRefinery, TimmSLRAdapter
from _slr_helpers import (ImageCollator, load_train_split, prepare_labels, processor_size,
                                        save_final_model, timm_collates, torchvision_transforms)

logger = logging.getLogger(__name__)


@dataclass
class SLRArguments:
    """The refinery's settings."""

    k: int = field(default=5, metadata={"help": "Number of folds."})
    n: float = field(default=3.0, metadata={"help": "M-step weight of the old labels: L <- (n L + P) / (n + 1)."})
    rounds: int = field(default=3, metadata={"help": "EM rounds (paper: 2-6)."})
    variant: Literal["slr", "slr-a", "slr-e", "slr-ae"] = field(
        default="slr", metadata={"help": "-a: flip test-time augmentation of the predictions (images); "
                                         "-e: average `ensemble_size` models per fold."})
    ensemble_size: int = field(default=3, metadata={"help": "Models per fold for slr-e / slr-ae."})
    task: Literal["classification", "regression"] = field(
        default="classification", metadata={"help": "regression: refine values (ordinal grades too)."})
    backend: Literal["hf", "timm"] = field(default="hf", metadata={"help": "Hugging Face Trainer or timm loop."})
    train_final_model: bool = field(default=True, metadata={"help": "Train a model on all data, refined labels."})
    resume: bool = field(default=True, metadata={"help": "Resume from OUTPUT_DIR/slr when it has a checkpoint."})


@dataclass
class DataArguments:
    """Local training data (no Hub downloads)."""

    dataset_name: str | None = field(default=None, metadata={"help": "A local dataset saved with save_to_disk."})
    train_dir: str | None = field(default=None, metadata={"help": "Training images: train_dir/class/*.png."})
    train_file: str | None = field(default=None, metadata={"help": "A csv/json training file (text)."})
    file_encoding: str | None = field(default=None, metadata={"help": "Encoding of a csv train_file."})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    text_column_name: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels or values."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokenizer truncation length."})
    augment: bool = field(default=True, metadata={"help": "Random crop + flip when training on images."})


@dataclass
class ModelArguments:
    """A local Hugging Face model (backend hf) or a timm model name (backend timm)."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Local HF model directory."})
    timm_model: str | None = field(default=None, metadata={"help": "timm model name, e.g. resnet18."})
    pretrained: bool = field(default=False, metadata={"help": "Load timm pretrained weights (needs a cache)."})
    ignore_mismatched_sizes: bool = field(default=True, metadata={"help": "Re-initialise a head of another size."})


def hf_adapter(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
               dataset: Any, num_labels: int, slr_args: SLRArguments) -> tuple[HFTrainerSLRAdapter, Any, Any]:
    """(adapter, dataset ready for it, processor) for a local Hugging Face image or text model."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    if model_args.model_name_or_path is None:
        raise ValueError("Expected `--model_name_or_path` (a local HF model) for --backend hf but got none.")
    path, is_image = model_args.model_name_or_path, data_args.image_column_name in dataset.column_names
    config = AutoConfig.from_pretrained(path, num_labels=num_labels,
                                        problem_type="regression" if slr_args.task == "regression" else None)
    if is_image:
        processor = AutoImageProcessor.from_pretrained(path)
        train_tf, eval_tf = torchvision_transforms(processor_size(processor), getattr(processor, "image_mean", None),
                                                   getattr(processor, "image_std", None), data_args.augment)
        mode = "L" if getattr(config, "num_channels", 3) == 1 else "RGB"
        collators = ImageCollator(train_tf, data_args.image_column_name, mode), ImageCollator(
            eval_tf, data_args.image_column_name, mode)
        training_args.remove_unused_columns = False
        model_cls = AutoModelForImageClassification
    else:
        processor, collators, model_cls, dataset = _text_setup(path, data_args, dataset)

    def model_init() -> Any:
        return model_cls.from_pretrained(path, config=config,
                                         ignore_mismatched_sizes=model_args.ignore_mismatched_sizes)

    adapter = HFTrainerSLRAdapter(model_init, training_args, num_labels, label_column=data_args.label_column_name,
                                  task=slr_args.task, data_collator=collators[0], eval_data_collator=collators[1],
                                  tta_flip=is_image and slr_args.variant in ("slr-a", "slr-ae"))
    return adapter, dataset, processor


def _text_setup(path: str, data_args: DataArguments, dataset: Any) -> tuple[Any, tuple[Any, Any], Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    tokenizer = AutoTokenizer.from_pretrained(path)
    column = data_args.text_column_name
    if column not in dataset.column_names:
        raise ValueError(f"Expected a text column {column!r} in {dataset.column_names}; set --text_column_name.")
    dataset = dataset.map(lambda b: tokenizer(b[column], truncation=True, max_length=data_args.max_seq_length),
                          batched=True, remove_columns=[column])
    collator = DataCollatorWithPadding(tokenizer)
    return tokenizer, (collator, collator), AutoModelForSequenceClassification, dataset


def timm_adapter(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments,
                 num_labels: int, slr_args: SLRArguments) -> TimmSLRAdapter:
    """The timm loop on images, with the training settings of `TrainingArguments` (epochs, batch, lr, wd)."""
    if model_args.timm_model is None:
        raise ValueError("Expected `--timm_model` for --backend timm but got none.")
    train_c, eval_c = timm_collates(model_args.timm_model, data_args.image_column_name, data_args.augment)
    device = "cuda" if training_args.use_cpu is False and __import__("torch").cuda.is_available() else "cpu"
    return TimmSLRAdapter(num_labels, model_name=model_args.timm_model, task=slr_args.task,
                          model_kwargs={"pretrained": model_args.pretrained},
                          collate=lambda examples, train: (train_c if train else eval_c)(examples),
                          epochs=int(training_args.num_train_epochs),
                          batch_size=training_args.per_device_train_batch_size,
                          lr=training_args.learning_rate, weight_decay=training_args.weight_decay, device=device,
                          tta_flip=slr_args.variant in ("slr-a", "slr-ae"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = HfArgumentParser((SLRArguments, DataArguments, ModelArguments, TrainingArguments))
    slr_args, data_args, model_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(training_args.seed)
    training_args.save_strategy = SaveStrategy.NO  # fold models are not kept; the final one is saved below
    dataset = load_train_split(data_args.dataset_name, data_args.train_dir, data_args.train_file,
                               data_args.file_encoding)
    if data_args.max_train_samples is not None:
        dataset = dataset.shuffle(seed=training_args.seed).select(range(data_args.max_train_samples))
    dataset, names = prepare_labels(dataset, data_args.label_column_name, slr_args.task)
    num_labels = len(names) if names is not None else 1
    processor = None
    if "a" in slr_args.variant[3:] and data_args.image_column_name not in dataset.column_names:
        raise ValueError(f"Expected an image column {data_args.image_column_name!r} for --variant "
                         f"{slr_args.variant} (flip test-time augmentation) but got {dataset.column_names}; "
                         "use slr or slr-e for text.")
    if slr_args.backend == "timm":
        adapter: Any = timm_adapter(model_args, data_args, training_args, num_labels, slr_args)
    else:
        adapter, dataset, processor = hf_adapter(model_args, data_args, training_args, dataset, num_labels, slr_args)
    refinery = StochasticLabelRefinery(
        adapter.train, adapter.predict, k=slr_args.k, n=slr_args.n, rounds=slr_args.rounds, seed=training_args.seed,
        output_dir=os.path.join(training_args.output_dir, "slr"), task=slr_args.task,
        num_classes=num_labels if names is not None else None,
        label_column=data_args.label_column_name, ensemble=slr_args.ensemble_size if "e" in slr_args.variant[3:] else 1,
        resume=slr_args.resume)
    refined = refinery.run(dataset)
    summary = {"rounds": slr_args.rounds, "k": slr_args.k, "n": slr_args.n, "variant": slr_args.variant,
               "labels_dir": os.path.join(training_args.output_dir, "slr"), "history": refinery.history}
    if slr_args.train_final_model:
        model = refinery.train_final(refined)
        extra = {"label_names": names, "timm_model": model_args.timm_model, "task": slr_args.task, **summary}
        summary["final_model"] = save_final_model(model, training_args.output_dir, extra, processor)
    with open(os.path.join(training_args.output_dir, "slr_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    logger.info("SLR done: %s", summary)
    return summary


if __name__ == "__main__":
    run_main(main, script=__file__)
