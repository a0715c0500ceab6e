"""The labelled split of ``hf-labelsmooth extract``: loaded as the training scripts load data, its class names, and the
pairing of the dataset's classes with the model's outputs."""
from __future__ import annotations

import re
from typing import Any, Sequence

from ..audio import audio_split_dirs, decode_audio_columns, load_audio_folder
from ..data import data_source, load_imagefolder, load_named, load_text_files
from .arguments import ExtractArguments

GENERIC_LABEL = re.compile(r"LABEL_\d+")  # transformers' names when a config has no id2label


def load_split(args: ExtractArguments) -> Any:
    """The `args.split` split (a `datasets.Dataset`), cut to a fixed random subset of `args.max_samples`."""
    dataset = load_all(args)
    if args.split not in dataset:
        raise ValueError(f"Expected a split {args.split!r} but got splits {sorted(dataset)}. Pass --split.")
    split = dataset[args.split]
    if args.label_column_name not in split.column_names:
        raise ValueError(f"Expected a label column {args.label_column_name!r} but got columns {split.column_names}. "
                         "Set --label_column_name.")
    if args.max_samples is not None and args.max_samples < len(split):
        split = split.shuffle(seed=0).select(range(args.max_samples))  # a fixed random subset: every class in it
    if len(split) == 0:
        raise ValueError(f"Expected labelled samples in split {args.split!r} but got none.")
    return split


def load_all(args: ExtractArguments) -> Any:
    """The `DatasetDict`: an audio folder by hand (no torchcodec), else `load_dataset` / files / image folder."""
    for root in (args.dataset_name, args.train_dir):
        folders = audio_split_dirs(root) if root else None
        if folders is not None:
            return load_audio_folder(dict(folders) if root == args.dataset_name else {"train": root})
    if args.dataset_name or args.dataset_from_disk:
        return decode_audio_columns(load_named(args.dataset_name, args.dataset_config_name, args.dataset_from_disk,
                                               args.cache_dir, args.token))
    if args.train_file:
        return load_text_files(args.train_file, None, cache_dir=args.cache_dir)
    return load_imagefolder(args.train_dir, None, args.cache_dir)


def describe_data(args: ExtractArguments) -> str | None:
    """The data as the artifact names it (a Hub id, or the local folder), with the split."""
    source = data_source(args.dataset_name, args.dataset_from_disk, args.train_file, args.train_dir)
    if source is None:
        return None
    return f"{source}{f' ({args.dataset_config_name})' if args.dataset_config_name else ''}"


def class_names(split: Any, column: str) -> list[str]:
    """A ClassLabel's names, else the sorted distinct label values (as the text script names them)."""
    feature = split.features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    if getattr(feature, "dtype", "").startswith("float"):
        raise ValueError(f"Expected class labels in column {column!r} but got floats. Pick the column of class ids "
                         "or names with --label_column_name.")
    return [str(v) for v in sorted(set(split[column]))]


def with_unseen_classes(names: list[str], model_names: list[str] | None, match_by: str) -> list[str]:
    """The model's class names when they strictly include the dataset's (csv / json values and image folders name only
    the classes they hold), so that a class absent from the data gets a uniform row instead of failing the size
    check; else the dataset's names."""
    if match_by != "name" or not model_names or not set(names) < set(model_names):
        return names
    return list(model_names)


def label_ids(values: Sequence[Any], data_names: list[str], names: list[str], class_label: bool) -> list[int]:
    """Class ids (in `names`) of a batch of label cells: ClassLabel ids into `data_names`, or raw values."""
    index = {n: i for i, n in enumerate(names)}
    return [index[data_names[int(v)] if class_label else str(v)] for v in values]


def output_order(names: list[str], model_names: list[str] | None, num_labels: int, match_by: str,
                 model: str) -> list[int]:
    """For each dataset class, the model output that scores it (the matrix then follows the dataset's order).

    Raises:
        ValueError: The model has another number of outputs, or (matching by name) labels that are not the
            dataset's class names.
    """
    if num_labels != len(names):
        raise ValueError(f"Expected a model with one output per dataset class ({len(names)}: {names[:8]}"
                         f"{'...' if len(names) > 8 else ''}) but got num_labels={num_labels} ({model}). Extract over "
                         "the data the model was trained on, or set --label_column_name to its label column.")
    if match_by == "index" or model_names is None:
        return list(range(num_labels))
    if all(GENERIC_LABEL.fullmatch(n) for n in model_names):
        raise ValueError(f"Expected the model's id2label to name the dataset's classes but got generic names "
                         f"({model_names[:3]}...). Pass --match_labels_by index if output i is the dataset's class i "
                         f"({names[:3]}...).")
    if sorted(model_names) != sorted(names):
        missing, unknown = sorted(set(names) - set(model_names)), sorted(set(model_names) - set(names))
        raise ValueError(f"Expected the model's labels to be the dataset's class names but got {len(missing)} "
                         f"dataset classes the model lacks ({missing[:5]}) and model labels not in the data "
                         f"({unknown[:5]}). Set --label_column_name, or --match_labels_by index to pair by position.")
    return [model_names.index(n) for n in names]
