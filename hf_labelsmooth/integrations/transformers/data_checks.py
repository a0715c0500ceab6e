"""Checks of the model and the datasets before `LabelSmoothingTrainer` trains: problem type and label range.

A wrong label found only when its batch arrives costs the steps before it; where a dataset says its label range
cheaply (an Arrow column of a `datasets.Dataset`, scanned without its other columns), it is checked up front.
"""
from __future__ import annotations

from typing import Any

SINGLE_LABEL = (None, "single_label_classification")
LABEL_COLUMNS = ("labels", "label")  # the default data collators rename "label" to "labels"


def check_problem_type(config: Any) -> None:
    """Refuse models configured for another problem than single-label classification over num_labels >= 2."""
    problem = getattr(config, "problem_type", None)
    if problem not in SINGLE_LABEL:
        raise ValueError(f"Expected a single-label classifier (config.problem_type None or "
                         f"'single_label_classification') but got problem_type={problem!r}: hf_labelsmooth losses "
                         f"smooth one softmax over the classes. Train a {problem!r} model with a plain Trainer.")
    if int(config.num_labels) < 2:
        raise ValueError(f"Expected a classifier with num_labels >= 2 but got num_labels={config.num_labels} "
                         "(transformers trains a single output as regression). Set num_labels to the number of "
                         "classes.")


def label_range(dataset: Any) -> tuple[str, int, int] | None:
    """(column, min, max) of the integer labels of a `datasets.Dataset`; None when not known cheaply.

    Datasets with a custom transform (`set_transform`), iterable datasets, soft labels and other dataset types
    give None: their labels are checked batch by batch by the loss.
    """
    try:
        import pyarrow.compute as pc
        from datasets import Dataset
    except ImportError:
        return None
    if not isinstance(dataset, Dataset) or dataset.format.get("type") == "custom" or not len(dataset):
        return None
    column = next((c for c in LABEL_COLUMNS if c in dataset.column_names), None)
    if column is None or getattr(dataset.features[column], "dtype", None) not in ("int8", "int16", "int32", "int64",
                                                                                   "uint8", "uint16", "uint32"):
        return None
    values = dataset.with_format("arrow")[column]  # this column only, with the dataset's row selection applied
    bounds = pc.min_max(values)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    return None if lo is None else (column, int(lo), int(hi))


def check_dataset_labels(datasets: dict[str, Any], num_labels: int) -> None:
    """Raise when a dataset's labels fall outside [0, num_labels), before any training step.

    Args:
        datasets: Named datasets (``{"train": ..., "eval": ...}``); None entries are skipped.
        num_labels: The model's number of outputs.
    """
    for name, dataset in datasets.items():
        found = label_range(dataset) if dataset is not None else None
        if found is None:
            continue
        column, lo, hi = found
        if lo < 0 or hi >= num_labels:
            raise ValueError(
                f"Expected labels in [0, num_labels={num_labels}) but the {name} dataset's {column!r} column holds "
                f"values in [{lo}, {hi}]. Set the model's num_labels (and id2label) to the dataset's classes, or fix "
                "the labels (0-based class ids; -100, the ignore index, is not supported).")
