"""Local data and tiny models for the training-script tests and demo runs (real data, offline).

``python -m tests.support.trainer_data OUT`` (with train_scripts/ on PYTHONPATH, as pytest's `pythonpath` has it)
writes OUT/{digits,trec,fsdd} folders/files and OUT/{convnext,wav2vec2} models.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import prepare_demo_data  # train_scripts/ (pytest's `pythonpath`)
import torch

from tests.support.digits import DIGIT_NAMES, write_digits_imagefolder
from tests.support.paths import CONFIGS

if TYPE_CHECKING:
    import pytest

SHARED = prepare_demo_data.DEFAULT_SHARED
TREC = SHARED / "data" / "trec"
FSDD = SHARED / "data" / "fsdd" / "recordings"


def requires_shared(path: Path) -> "pytest.MarkDecorator":
    """Skip when the project's shared data is absent, except in CI (CI=true), where its absence must fail."""
    import pytest

    return pytest.mark.skipif(not path.exists() and not os.environ.get("CI"),
                              reason=f"{path} not found: set HF_LABELSMOOTH_SHARED to the shared/ folder")


def make_tiny_convnext(out: Path, seed: int = 0) -> Path:
    """A randomly initialised ConvNeXt from ``configs/convnext-digits`` (1 channel, 32×32), saved with its processor."""
    from transformers import AutoConfig, AutoImageProcessor, ConvNextForImageClassification

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(CONFIGS / "convnext-digits", num_labels=10)
    ConvNextForImageClassification(config).save_pretrained(out)
    AutoImageProcessor.from_pretrained(CONFIGS / "convnext-digits").save_pretrained(out)
    return out


def make_trec_csv(out: Path, n_train: int | None = None, n_test: int | None = None) -> Path:
    """TREC as out/{train,test}.csv (text, coarse label) from the shared data."""
    return prepare_demo_data.make_trec_csv(out, TREC, n_train, n_test)


def make_fsdd_folders(out: Path, speakers: tuple[str, ...] = ("george", "jackson", "lucas", "nicolas"),
                      max_index: int = 50) -> Path:
    """FSDD clips of `speakers` as out/{train,validation}/{digit}/*.wav (indices 0–4 validation)."""
    return prepare_demo_data.make_fsdd_folders(out, FSDD, speakers, max_index)


def make_tiny_wav2vec2(out: Path, seed: int = 0) -> Path:
    """A randomly initialised small Wav2Vec2 classifier from ``configs/wav2vec2-digits`` (8 kHz), saved to `out`."""
    from transformers import AutoConfig, AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(CONFIGS / "wav2vec2-digits", num_labels=10)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(out)
    AutoFeatureExtractor.from_pretrained(CONFIGS / "wav2vec2-digits").save_pretrained(out)
    return out


def main(out: str) -> None:
    root = Path(out)
    write_digits_imagefolder(root / "digits", 120, 40, size=32, names=DIGIT_NAMES)
    make_tiny_convnext(root / "convnext")
    make_trec_csv(root / "trec")
    make_fsdd_folders(root / "fsdd")
    make_tiny_wav2vec2(root / "wav2vec2")


if __name__ == "__main__":
    main(sys.argv[1])
