#!/usr/bin/env python
"""Fine-tune a text classifier with class-relation label smoothing (the CLI of transformers'
examples/pytorch/text-classification/run_classification.py, plus the `LabelSmoothingTrainingArguments`).

Examples::

    # a Hub model on a Hub dataset, pushed with its learned matrix
    python train_scripts/run_text_classification.py --model_name_or_path bert-base-uncased \
        --dataset_name SetFit/20_newsgroups --label_column_name label_text --label_smoothing_method lspp \
        --output_dir out --do_train --do_eval --push_to_hub --hub_model_id me/bert-20ng-lspp
    # local csv files (a text and a label column); --do_predict writes predict_results.txt for the test file
    python train_scripts/run_text_classification.py --model_name_or_path ./minilm --train_file train.csv \
        --validation_file val.csv --test_file test.csv --text_column_names text --max_seq_length 64 \
        --output_dir out --do_train --do_eval --do_predict --label_smoothing_method ols --use_cpu
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          default_data_collator, set_seed)

from hf_labelsmooth.exits import run_main
from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from hf_labelsmooth.metrics.classification import classification_metrics
from _hf_data import data_source, load_named, load_text_files
from _hf_run import (ModelArguments, check_push_access, finish, load_model, load_processor, parse_arguments,
                     resolve_checkpoint, setup_logging, train_and_evaluate, trainer_sources)

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train, evaluate and predict on."""

    dataset_name: str | None = field(default=None, metadata={
        "help": "A Hub dataset id, or a local folder of csv / json files, via datasets.load_dataset."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_from_disk: str | None = field(default=None, metadata={"help": "A dataset saved with save_to_disk."})
    train_file: str | None = field(default=None, metadata={"help": "csv or json(lines) training file."})
    validation_file: str | None = field(default=None, metadata={"help": "csv or json(lines) validation file."})
    test_file: str | None = field(default=None, metadata={"help": "csv or json(lines) test file (--do_predict)."})
    file_encoding: str | None = field(default=None, metadata={"help": "Encoding of csv files (e.g. latin-1)."})
    text_column_names: str | None = field(default=None, metadata={"help": "Comma-separated text columns "
                                                                          "(default 'sentence' or 'text')."})
    text_column_delimiter: str = field(default=" ", metadata={"help": "Joins several text columns."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    max_seq_length: int = field(default=128, metadata={"help": "Maximum tokens per input (longer are truncated)."})
    pad_to_max_length: bool = field(default=True, metadata={"help": "Pad to max_seq_length (else dynamic)."})
    shuffle_train_dataset: bool = field(default=False, metadata={"help": "Shuffle the training set once."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test set."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenising."})


@dataclass
class TextModelArguments(ModelArguments):
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path if not the model's."})
    use_fast_tokenizer: bool = field(default=True, metadata={"help": "Use a fast (Rust) tokenizer."})


def load_data(data_args: DataTrainingArguments, model_args: ModelArguments):
    dataset = load_named(data_args.dataset_name, data_args.dataset_config_name, data_args.dataset_from_disk,
                         model_args.cache_dir, model_args.token)
    if dataset is not None:
        return dataset
    return load_text_files(data_args.train_file, data_args.validation_file, data_args.test_file, model_args.cache_dir,
                           data_args.file_encoding)


def label_names(dataset, column: str) -> list[str]:
    """Class names: a ClassLabel's names, else the sorted distinct label values of the labelled splits."""
    labelled = [split for split in dataset.values() if column in split.column_names]
    if not labelled:
        columns = next(iter(dataset.values())).column_names
        raise ValueError(f"Expected a label column {column!r} but got columns {columns}. Set --label_column_name.")
    feature = labelled[0].features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    if feature.dtype.startswith("float"):
        raise ValueError(f"Expected class labels in column {column!r} but got floats: regression and multi-label "
                         "are not supported by the label smoothing losses.")
    return [str(v) for v in sorted({v for split in labelled for v in split[column]})]


def text_columns(data_args: DataTrainingArguments, columns: list[str]) -> list[str]:
    if data_args.text_column_names is not None:
        return data_args.text_column_names.split(",")
    found = [c for c in ("sentence", "text") if c in columns]
    if not found:
        raise ValueError(f"Expected a 'sentence' or 'text' column but got {columns}. Pass --text_column_names.")
    return found[:1]


def tokenize(dataset, data_args: DataTrainingArguments, tokenizer, label2id: dict[str, int], training_args):
    """Every split tokenised, with integer ``labels`` where the split has labels."""
    columns = text_columns(data_args, next(iter(dataset.values())).column_names)
    max_length = min(data_args.max_seq_length, tokenizer.model_max_length)
    label = data_args.label_column_name

    def preprocessor(class_label: bool):
        def preprocess(batch):
            texts = [data_args.text_column_delimiter.join(str(batch[c][i]) for c in columns)
                     for i in range(len(batch[columns[0]]))]
            result = tokenizer(texts, padding="max_length" if data_args.pad_to_max_length else False,
                               max_length=max_length, truncation=True)
            if label in batch:  # ClassLabel ids as they are, raw values through the config's label2id
                result["labels"] = [int(v) if class_label else label2id[str(v)] for v in batch[label]]
            return result
        return preprocess

    with training_args.main_process_first(desc="tokenising"):
        return {name: split.map(preprocessor(label in split.column_names and hasattr(split.features[label], "names")),
                                batched=True, num_proc=data_args.preprocessing_num_workers,
                                remove_columns=split.column_names)
                for name, split in dataset.items()}


def select(split, limit: int | None, shuffle_seed: int | None = None):
    if split is not None and shuffle_seed is not None:
        split = split.shuffle(seed=shuffle_seed)
    return split if split is None or limit is None else split.select(range(min(limit, len(split))))


@contextmanager
def in_dataset_order(args):
    """Evaluation batches in the dataset's order: a length-grouped sampling strategy (transformers >= 5.25 groups
    evaluation and prediction batches too) would return predictions in the sampler's order."""
    names = ("train_sampling_strategy", "group_by_length")  # 5.25's option, and the older boolean
    saved = {name: getattr(args, name) for name in names if hasattr(args, name)}
    for name, value in saved.items():
        setattr(args, name, "random" if isinstance(value, str) else False)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(args, name, value)


def predict(trainer, test, names: list[str], training_args) -> None:
    """Predict the test split and write ``predict_results.txt`` (line i: test example i and its predicted label);
    log test metrics when the split has labels (``predict_accuracy``, ``predict_nll``, ``predict_ece``), as the
    official script does."""
    with in_dataset_order(trainer.args):
        output = trainer.predict(test, metric_key_prefix="predict")
    if output.metrics and "labels" in test.column_names:
        trainer.log_metrics("predict", output.metrics)
        trainer.save_metrics("predict", output.metrics)
    predictions = np.argmax(output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions, -1)
    if trainer.is_world_process_zero():
        with open(os.path.join(training_args.output_dir, "predict_results.txt"), "w", encoding="utf-8") as writer:
            writer.write("index\tprediction\n")
            writer.writelines(f"{i}\t{names[p]}\n" for i, p in enumerate(predictions))


def require_split(splits: dict, name: str, flag: str, fix: str):
    if name not in splits:
        raise ValueError(f"Expected a {name!r} split for {flag} but got splits {sorted(splits)}. {fix}")
    return splits[name]


def main() -> dict[str, float]:
    model_args, data_args, training_args = parse_arguments(
        (TextModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    setup_logging(training_args)
    check_push_access(training_args)
    checkpoint = resolve_checkpoint(training_args)
    set_seed(training_args.seed)
    dataset = load_data(data_args, model_args)
    names = label_names(dataset, data_args.label_column_name)
    model = load_model(AutoModelForSequenceClassification, model_args, names, "text-classification")
    tokenizer = load_processor(AutoTokenizer, model_args.tokenizer_name, model_args)
    splits = tokenize(dataset, data_args, tokenizer, model.config.label2id, training_args)
    args = training_args
    seed = args.seed if data_args.shuffle_train_dataset else None
    train = select(require_split(splits, "train", "--do_train", "Pass --train_file."), data_args.max_train_samples,
                   seed) if args.do_train else None
    evaluation = select(require_split(splits, "validation", "--do_eval", "Pass --validation_file (the test split is "
                                      "used by --do_predict)."), data_args.max_eval_samples) if args.do_eval else None
    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    source = data_source(data_args.dataset_name, data_args.dataset_from_disk, data_args.train_file,
                         data_args.validation_file, data_args.test_file)
    trainer = LabelSmoothingTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                    compute_metrics=classification_metrics, processing_class=tokenizer,
                                    data_collator=collator,
                                    **trainer_sources(model_args, source, data_args.dataset_config_name))
    metrics = train_and_evaluate(trainer, args, checkpoint)
    if args.do_predict:
        test = require_split(splits, "test", "--do_predict", "Pass --test_file.")
        predict(trainer, select(test, data_args.max_predict_samples), names, args)
    finish(trainer, args, "text-classification", [])
    return metrics


if __name__ == "__main__":
    run_main(main, script=__file__)
