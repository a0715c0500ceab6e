"""Checks of the model and the datasets before `LabelSmoothingTrainer` trains: problem type and label range.

A wrong label found only when its batch arrives costs the steps before it; where a dataset says its label range
cheaply (an Arrow column of a `datasets.Dataset`, scanned without its other columns), it is checked up front.
"""
from __future__ import annotations

from typing import Any

from ...losses.validation import IGNORE_INDEX

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


INTEGER_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def _integer_labels(dataset: Any) -> tuple[str, bool] | None:
    """(label column, whether it holds token labels: a list per row) when its values are integers, else None."""
    column = next((c for c in LABEL_COLUMNS if c in dataset.column_names), None)
    if column is None:
        return None
    feature = dataset.features[column]
    inner = getattr(feature, "feature", None)  # List / Sequence of values: token labels
    dtype = getattr(inner if inner is not None else feature, "dtype", None)
    return (column, inner is not None) if dtype in INTEGER_TYPES else None


def label_range(dataset: Any, ignore_index: int | None = None) -> tuple[str, int, int] | None:
    """(column, min, max) of the integer labels of a `datasets.Dataset` (token labels: of every token), leaving out
    the ignore index (`losses.tokens.resolve_ignore_index`: -100 for token labels unless set); None when not known
    cheaply.

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
    found = _integer_labels(dataset)
    if found is None:
        return None
    column, tokens = found
    values = dataset.with_format("arrow")[column]  # this column only, with the dataset's row selection applied
    if tokens:
        values = pc.list_flatten(values)
    ignored = ignore_index if ignore_index is not None else (IGNORE_INDEX if tokens else None)
    if ignored is not None:
        values = pc.filter(values, pc.not_equal(values, ignored))
    bounds = pc.min_max(values)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    return None if lo is None else (column, int(lo), int(hi))


def check_dataset_labels(datasets: dict[str, Any], num_labels: int, ignore_index: int | None = None) -> None:
    """Raise when a dataset's labels fall outside [0, num_labels), before any training step.

    Args:
        datasets: Named datasets (``{"train": ..., "eval": ...}``); None entries are skipped.
        num_labels: The model's number of outputs.
        ignore_index: The loss's `ignore_index` (None: -100 is ignored in token labels only).
    """
    for name, dataset in datasets.items():
        found = label_range(dataset, ignore_index) if dataset is not None else None
        if found is None:
            continue
        column, lo, hi = found
        if lo < 0 or hi >= num_labels:
            raise ValueError(
                f"Expected labels in [0, num_labels={num_labels}) but the {name} dataset's {column!r} column holds "
                f"values in [{lo}, {hi}]. Set the model's num_labels (and id2label) to the dataset's classes, or fix "
                f"the labels (0-based class ids; {IGNORE_INDEX}, the ignore index, is skipped in token labels only: "
                f"for sequence labels drop those rows or give the loss ignore_index={IGNORE_INDEX}).")
