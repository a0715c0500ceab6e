"""Atomic per-round checkpoints of the refined labels: a one-column `datasets.Dataset` + a `state.json` commit."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value
from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from .._io import atomic_directory, write_json

STATE_FILE = "state.json"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the `datasets` progress bars of a save (restoring the caller's setting)."""
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def round_dir(output_dir: str | os.PathLike, round_idx: int) -> Path:
    """Folder of the labels after `round_idx` rounds (``round_000`` holds the given labels)."""
    return Path(output_dir) / f"round_{round_idx:03d}"


def labels_dataset(labels: np.ndarray, column: str) -> Dataset:
    """A one-column Dataset of float32 labels: a list per row for [N, K], a scalar per row for [N]."""
    labels = np.ascontiguousarray(labels, dtype=np.float32)
    feature: Any = Value("float32") if labels.ndim == 1 else List(Value("float32"))
    return Dataset.from_dict({column: labels.tolist()}, features=Features({column: feature}))


def column_array(dataset: Dataset, column: str, dtype: Any = np.float32) -> np.ndarray:
    """A numeric column as an array [N, ...] (nested equal-length lists become dimensions), read through Arrow."""
    col = dataset.with_format("arrow")[column]
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    shape = [len(col)]
    while pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if len(lengths) and lengths.min() != lengths.max():
            raise ValueError(f"Expected rows of equal length in column {column!r} but got lengths "
                             f"{lengths.min()}..{lengths.max()}; pad them or pass a `collate`.")
        shape.append(int(lengths[0]) if len(lengths) else 0)
        col = pc.list_flatten(col)
    values = col.to_numpy(zero_copy_only=False).reshape(shape)
    return values if dtype is None else values.astype(dtype)


def save_round(output_dir: str | os.PathLike, round_idx: int, labels: np.ndarray, column: str,
               meta: dict[str, Any]) -> Path:
    """Write the labels of a finished round, then commit it in `state.json` (both atomic).

    A crash before the commit leaves the previous round as the last finished one; the half-written round is
    overwritten when the refinery runs again.
    """
    final = round_dir(output_dir, round_idx)
    with atomic_directory(final) as tmp, _quiet():
        labels_dataset(labels, column).save_to_disk(str(tmp))
    write_json(Path(output_dir) / STATE_FILE, {**meta, "rounds_done": round_idx, "labels": final.name})
    return final


def load_state(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The committed state, or None when no round was finished in `output_dir`."""
    path = Path(output_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_round(output_dir: str | os.PathLike, round_idx: int, column: str) -> np.ndarray:
    """The labels saved after `round_idx` rounds."""
    return column_array(Dataset.load_from_disk(str(round_dir(output_dir, round_idx))), column)


def check_meta(state: dict[str, Any], meta: dict[str, Any], output_dir: str | os.PathLike) -> None:
    """Refuse to resume a checkpoint made with other settings or another dataset."""
    for key, value in meta.items():
        if state.get(key) != value:
            raise ValueError(
                f"Expected the checkpoint in {output_dir} to have {key}={value!r} but got {state.get(key)!r}. "
                "Resume with the same settings and dataset, or use a new output_dir (or resume=False)."
            )
