"""Local datasets for the training scripts: image folders, csv/json files, audio folders (no Hub, no torchcodec)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def _require_dir(path: str | None, name: str) -> None:
    if path is not None and not os.path.isdir(path):
        raise FileNotFoundError(f"Expected `{name}` to be a directory but got {path!r}. Pass a folder with one "
                                "subfolder per class (class_name/file).")


def load_imagefolder(train_dir: str | None, validation_dir: str | None, cache_dir: str | None = None) -> Any:
    """A `DatasetDict` (``image``, ``label`` ClassLabel) from ``train_dir/class/*.png`` style folders."""
    from datasets import load_dataset

    _require_dir(train_dir, "train_dir")
    _require_dir(validation_dir, "validation_dir")
    data_files = {split: os.path.join(path, "**") for split, path in
                  (("train", train_dir), ("validation", validation_dir)) if path is not None}
    if not data_files:
        raise ValueError("Expected `--train_dir` and/or `--validation_dir` (or `--dataset_name` of a local "
                         "dataset) but got none.")
    return load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)


def load_text_files(train_file: str | None, validation_file: str | None, test_file: str | None = None,
                    cache_dir: str | None = None, encoding: str | None = None) -> Any:
    """A `DatasetDict` from csv or json(lines) files (the extension of the first file picks the builder)."""
    from datasets import load_dataset

    files = {s: f for s, f in (("train", train_file), ("validation", validation_file), ("test", test_file)) if f}
    if not files:
        raise ValueError("Expected `--train_file` and/or `--validation_file` (csv or json) but got none.")
    extension = Path(next(iter(files.values()))).suffix.lstrip(".").lower()
    if extension not in ("csv", "json", "jsonl"):
        raise ValueError(f"Expected csv or json files but got {extension!r} ({files}). Convert the data first.")
    builder = "json" if extension in ("json", "jsonl") else "csv"
    kwargs = {"encoding": encoding} if encoding and builder == "csv" else {}
    return load_dataset(builder, data_files=files, cache_dir=cache_dir, **kwargs)


def _audio_rows(directory: str) -> tuple[list[str], list[Path]]:
    classes = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
    files = [f for c in classes for f in sorted((Path(directory) / c).iterdir())
             if f.suffix.lower() in AUDIO_EXTENSIONS]
    if not classes or not files:
        raise FileNotFoundError(f"Expected class subfolders with {AUDIO_EXTENSIONS} files in {directory!r} but "
                                "found none. Lay the data out as DIR/class_name/clip.wav.")
    return classes, files


def _read_audio_split(directory: str, names: list[str]) -> dict[str, list]:
    """Columns audio (mono float32), sampling_rate and label (index in `names`) of one folder, via soundfile."""
    import soundfile as sf

    classes, files = _audio_rows(directory)
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise ValueError(f"Expected the classes of {directory!r} within {names} but got extra {unknown}.")
    rows: dict[str, list] = {"audio": [], "sampling_rate": [], "label": []}
    for path in files:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        rows["audio"].append(data.mean(axis=1))
        rows["sampling_rate"].append(int(rate))
        rows["label"].append(names.index(path.parent.name))
    return rows


def load_audio_folder(train_dir: str | None, validation_dir: str | None) -> Any:
    """A `DatasetDict` of ``audio`` (float32 mono array), ``sampling_rate`` and ``label`` (ClassLabel).

    Audio is read with soundfile and kept as raw arrays: datasets' `Audio()` feature needs torchcodec + FFmpeg.
    Class names are the subfolder names of `train_dir` (or `validation_dir`).
    """
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    _require_dir(train_dir, "train_dir")
    _require_dir(validation_dir, "validation_dir")
    splits = {s: d for s, d in (("train", train_dir), ("validation", validation_dir)) if d is not None}
    if not splits:
        raise ValueError("Expected `--train_dir` and/or `--validation_dir` (audio folders) but got none.")
    names = _audio_rows(next(iter(splits.values())))[0]
    features = Features({"audio": Sequence(Value("float32")), "sampling_rate": Value("int32"),
                         "label": ClassLabel(names=names)})
    result = {split: Dataset.from_dict(_read_audio_split(directory, names), features=features)
              for split, directory in splits.items()}
    return DatasetDict(result)


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono float array with a polyphase filter (scipy); unchanged when the rates agree."""
    if rate == target_rate:
        return np.asarray(audio, dtype=np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target_rate))
    return resample_poly(np.asarray(audio, dtype=np.float32), target_rate // g, rate // g).astype(np.float32)


def random_subsample(audio: np.ndarray, max_length: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of at most `max_length` seconds (as the HF audio-classification example)."""
    sample_length = int(round(sample_rate * max_length))
    if len(audio) <= sample_length:
        return audio
    offset = int(rng.integers(0, len(audio) - sample_length))
    return audio[offset:offset + sample_length]
