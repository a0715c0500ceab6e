#!/usr/bin/env python
"""Fine-tune a text classifier with class-relation label smoothing (CLI of HF's run_classification.py).

Example (csv or json files with a text and a label column)::

    python train_scripts/run_text_classification.py --model_name_or_path ./minilm --train_file train.csv \
        --validation_file test.csv --text_column_names text --label_column_name label --max_seq_length 64 \
        --output_dir out --do_train --do_eval --label_smoothing_method ols --use_cpu
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, default_data_collator, set_seed)

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from _hf_data import load_text_files
from hf_labelsmooth.metrics.classification import compute_accuracy
from _hf_run import label_maps, setup_logging, train_and_evaluate

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on (local csv/json files or a dataset saved with save_to_disk)."""

    dataset_name: str | None = field(default=None, metadata={"help": "A local dataset saved with save_to_disk."})
    train_file: str | None = field(default=None, metadata={"help": "csv or json(lines) training file."})
    validation_file: str | None = field(default=None, metadata={"help": "csv or json(lines) validation file."})
    test_file: str | None = field(default=None, metadata={"help": "csv or json(lines) test file."})
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
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenising."})


@dataclass
class ModelArguments:
    """Which model, config and tokenizer to start from."""

    model_name_or_path: str = field(metadata={"help": "Local model directory (or cached Hub id)."})
    config_name: str | None = field(default=None, metadata={"help": "Config name or path if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models."})
    use_fast_tokenizer: bool = field(default=True, metadata={"help": "Use a fast (Rust) tokenizer."})
    model_revision: str = field(default="main", metadata={"help": "Model revision."})
    token: str | None = field(default=None, metadata={"help": "Hub token."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Re-initialise a head of another size."})


def load_data(data_args: DataTrainingArguments, cache_dir: str | None):
    if data_args.dataset_name is not None:
        from datasets import load_from_disk

        return load_from_disk(data_args.dataset_name)
    return load_text_files(data_args.train_file, data_args.validation_file, data_args.test_file, cache_dir,
                           data_args.file_encoding)


def label_names(dataset, column: str) -> list[str]:
    """Class names: a ClassLabel's names, else the sorted distinct label values over all splits."""
    feature = next(iter(dataset.values())).features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    if feature.dtype.startswith("float"):
        raise ValueError(f"Expected class labels in column {column!r} but got floats: regression and multi-label "
                         "are not supported by the label smoothing losses.")
    values = {v for split in dataset.values() for v in split[column]}
    return [str(v) for v in sorted(values)]


def text_columns(data_args: DataTrainingArguments, columns: list[str]) -> list[str]:
    if data_args.text_column_names is not None:
        return data_args.text_column_names.split(",")
    found = [c for c in ("sentence", "text") if c in columns]
    if not found:
        raise ValueError(f"Expected a 'sentence' or 'text' column but got {columns}. Pass --text_column_names.")
    return found[:1]


def tokenize(dataset, data_args: DataTrainingArguments, tokenizer, label2id: dict[str, int], training_args):
    """(train, evaluation) splits tokenised, with integer ``labels``, shuffled/truncated as asked."""
    columns = text_columns(data_args, next(iter(dataset.values())).column_names)
    max_length = min(data_args.max_seq_length, tokenizer.model_max_length)
    is_class_label = hasattr(next(iter(dataset.values())).features[data_args.label_column_name], "names")

    def preprocess(batch):
        texts = [data_args.text_column_delimiter.join(str(batch[c][i]) for c in columns)
                 for i in range(len(batch[columns[0]]))]
        result = tokenizer(texts, padding="max_length" if data_args.pad_to_max_length else False,
                           max_length=max_length, truncation=True)
        raw = batch[data_args.label_column_name]
        result["labels"] = [int(v) if is_class_label else label2id[str(v)] for v in raw]
        return result

    with training_args.main_process_first(desc="tokenising"):
        dataset = dataset.map(preprocess, batched=True, num_proc=data_args.preprocessing_num_workers,
                              remove_columns=next(iter(dataset.values())).column_names)
    train, evaluation = dataset.get("train"), dataset.get("validation", dataset.get("test"))
    if train is not None and data_args.shuffle_train_dataset:
        train = train.shuffle(seed=training_args.seed)
    if train is not None and data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if evaluation is not None and data_args.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(data_args.max_eval_samples, len(evaluation))))
    return train, evaluation


def main() -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    setup_logging(training_args)
    set_seed(training_args.seed)
    dataset = load_data(data_args, model_args.cache_dir)
    names = label_names(dataset, data_args.label_column_name)
    label2id, id2label = label_maps(names)
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token,
           "trust_remote_code": model_args.trust_remote_code}
    config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path, num_labels=len(names),
                                        label2id=label2id, id2label=id2label, finetuning_task="text-classification",
                                        **hub)
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path,
                                              use_fast=model_args.use_fast_tokenizer, **hub)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub)
    train, evaluation = tokenize(dataset, data_args, tokenizer, label2id, training_args)
    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    trainer = LabelSmoothingTrainer(model=model, args=training_args,
                                    train_dataset=train if training_args.do_train else None,
                                    eval_dataset=evaluation if training_args.do_eval else None,
                                    compute_metrics=compute_accuracy, processing_class=tokenizer,
                                    data_collator=collator)
    return train_and_evaluate(trainer, training_args)


if __name__ == "__main__":
    main()
