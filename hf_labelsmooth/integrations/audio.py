"""Audio for the training scripts and ``hf-labelsmooth extract``, read with soundfile and resampled with scipy (the
``[audio]`` extra): datasets' `Audio()` needs torchcodec + FFmpeg even to build a dataset, so local folders are listed
by hand and Hub `Audio` columns are read undecoded."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .data import SPLIT_DIRS, require_dir

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def audio_split_dirs(root: str) -> dict[str, str] | None:
    """``{split: folder}`` of an audio folder (root/split/class/clip.wav, or root/class/clip.wav as one train split);
    None when `root` holds no audio files in that layout (a Hub id, or csv / json / parquet data)."""
    path = Path(root)
    if not path.is_dir():
        return None
    splits = {SPLIT_DIRS[d.name.lower()]: str(d) for d in sorted(path.iterdir())
              if d.is_dir() and d.name.lower() in SPLIT_DIRS}
    candidates = splits or {"train": str(path)}
    if all(any(f.suffix.lower() in AUDIO_EXTENSIONS for f in Path(d).glob("*/*")) for d in candidates.values()):
        return candidates
    return None


def _audio_rows(directory: str) -> tuple[list[str], list[Path]]:
    classes = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
    files = [f for c in classes for f in sorted((Path(directory) / c).iterdir())
             if f.suffix.lower() in AUDIO_EXTENSIONS]
    if not classes or not files:
        raise FileNotFoundError(f"Expected class subfolders with {AUDIO_EXTENSIONS} files in {directory!r} but "
                                "found none. Lay the data out as DIR/class_name/clip.wav.")
    return classes, files


def load_audio_folder(splits: dict[str, str | None]) -> Any:
    """A `DatasetDict` of ``audio`` (``{"bytes": None, "path": file}``, read later by `read_audio`) and ``label``.

    The layout of datasets' audiofolder (split/class_name/clip.wav), without its `Audio()` feature: that needs
    torchcodec + FFmpeg even to build the dataset. Class names are the subfolder names of the first split.
    """
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    for split, directory in splits.items():
        require_dir(directory, f"{split} audio folder")
    given = {s: d for s, d in splits.items() if d is not None}
    if not given:
        raise ValueError("Expected --dataset_name (an audio folder or Hub dataset) or --train_dir / "
                         "--validation_dir (audio folders) but got none.")
    names = _audio_rows(next(iter(given.values())))[0]
    features = Features({"audio": {"bytes": Value("binary"), "path": Value("string")},
                         "label": ClassLabel(names=names)})
    result = {}
    for split, directory in given.items():
        classes, files = _audio_rows(directory)
        unknown = sorted(set(classes) - set(names))
        if unknown:
            raise ValueError(f"Expected the classes of {directory!r} within {names} but got extra {unknown}.")
        rows = {"audio": [{"bytes": None, "path": str(f)} for f in files],
                "label": [names.index(f.parent.name) for f in files]}
        result[split] = Dataset.from_dict(rows, features=features)
    return DatasetDict(result)


def read_audio(value: Any, rate: int | None = None) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sampling rate) of one audio cell, read with soundfile (no torchcodec).

    Args:
        value: ``{"bytes", "path"}`` (datasets' `Audio(decode=False)`, `load_audio_folder`) or raw samples.
        rate: The sampling rate of raw samples (a ``sampling_rate`` column).
    """
    if not isinstance(value, dict):
        if rate is None:
            raise ValueError("Expected a sampling rate column beside raw audio samples but got none: pass "
                             "--sampling_rate_column_name.")
        return np.asarray(value, dtype=np.float32), int(rate)
    try:
        import soundfile as sf  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("Expected soundfile to read audio but it is not installed: pip install "
                          "'hf_labelsmooth[audio]'.") from None
    source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    data, sampling_rate = sf.read(source, dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sampling_rate)


def decode_audio_columns(dataset: Any) -> Any:
    """Cast every `Audio()` column to ``decode=False`` so that `read_audio` (soundfile) reads it."""
    from datasets import Audio

    for split in dataset.values():
        for name, feature in split.features.items():
            if isinstance(feature, Audio) and feature.decode:
                return dataset.cast_column(name, Audio(decode=False))
    return dataset


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
