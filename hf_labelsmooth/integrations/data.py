"""Labelled data for the training scripts and ``hf-labelsmooth extract``: `datasets.load_dataset` (Hub or local),
image folders, csv/json files (audio folders: `hf_labelsmooth.integrations.audio`). Imports `datasets` on use."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


SPLIT_DIRS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
              "val": "validation", "dev": "validation", "test": "test", "testing": "test"}  # folder name -> split


def require_dir(path: str | None, name: str) -> None:
    if path is not None and not os.path.isdir(path):
        raise FileNotFoundError(f"Expected `{name}` to be a directory but got {path!r}. Pass a folder with one "
                                "subfolder per class (class_name/file).")


def load_named(name: str | None, config: str | None, from_disk: str | None, cache_dir: str | None = None,
               token: str | None = None) -> Any:
    """`--dataset_name` through `datasets.load_dataset` (Hub id, or a local imagefolder / csv / json / parquet
    folder), or `--dataset_from_disk` (a `save_to_disk` folder); None when neither is given."""
    if name is not None and from_disk is not None:
        raise ValueError(f"Expected one of --dataset_name and --dataset_from_disk but got both ({name!r}, "
                         f"{from_disk!r}). Drop one.")
    if from_disk is not None:
        from datasets import DatasetDict, load_from_disk

        loaded = load_from_disk(from_disk)
        return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    if name is None:
        return None
    from datasets import load_dataset

    return load_dataset(name, config, cache_dir=cache_dir, token=token)


def data_source(name: str | None, from_disk: str | None, *paths: str | None) -> str | None:
    """What the run trained on, for the model card: the dataset name, else the folder holding the local files."""
    if name or from_disk:
        return name or from_disk
    given = [os.path.abspath(p) for p in paths if p]
    if not given:
        return None
    root = os.path.commonpath(given)
    if os.path.isfile(root) or (len(given) == 1 and Path(root).name.lower() in SPLIT_DIRS):
        root = os.path.dirname(root)  # train.csv, or data/train: the data set is the folder above
    return root


def check_column(dataset: Any, column: str, flag: str) -> None:
    """Raise when a split lacks `column`, naming the columns there are and the flag to set."""
    for split, data in dataset.items():
        if column not in data.column_names:
            raise ValueError(f"Expected a column {column!r} in split {split!r} but got {data.column_names}. Set "
                             f"{flag} to one of them.")


def class_names(dataset: Any, column: str) -> list[str]:
    """The class names of a `ClassLabel` column (of the train split, else the first one)."""
    split = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    feature = split.features[column]
    if not hasattr(feature, "names"):
        raise ValueError(f"Expected class labels (a ClassLabel column) in {column!r} but got {feature}. Encode it "
                         "first (dataset.class_encode_column) or pick another --label_column_name.")
    return list(feature.names)


def load_imagefolder(train_dir: str | None, validation_dir: str | None, cache_dir: str | None = None) -> Any:
    """A `DatasetDict` (``image``, ``label`` ClassLabel) from ``train_dir/class/*.png`` style folders."""
    from datasets import load_dataset

    require_dir(train_dir, "train_dir")
    require_dir(validation_dir, "validation_dir")
    data_files = {split: os.path.join(path, "**") for split, path in
                  (("train", train_dir), ("validation", validation_dir)) if path is not None}
    if not data_files:
        raise ValueError("Expected --dataset_name (a Hub dataset or image folder) or --train_dir / --validation_dir "
                         "but got none.")
    return load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)


def load_text_files(train_file: str | None, validation_file: str | None, test_file: str | None = None,
                    cache_dir: str | None = None, encoding: str | None = None) -> Any:
    """A `DatasetDict` from csv or json(lines) files (the extension of the first file picks the builder)."""
    from datasets import load_dataset

    files = {s: f for s, f in (("train", train_file), ("validation", validation_file), ("test", test_file)) if f}
    if not files:
        raise ValueError("Expected --dataset_name (a Hub dataset or a folder of csv / json files) or --train_file / "
                         "--validation_file (csv or json) but got none.")
    extension = Path(next(iter(files.values()))).suffix.lstrip(".").lower()
    if extension not in ("csv", "json", "jsonl"):
        raise ValueError(f"Expected csv or json files but got {extension!r} ({files}). Convert the data first.")
    builder = "json" if extension in ("json", "jsonl") else "csv"
    kwargs = {"encoding": encoding} if encoding and builder == "csv" else {}
    return load_dataset(builder, data_files=files, cache_dir=cache_dir, **kwargs)
