"""Local data and tiny models for the training-script tests and demo runs (real data, offline).

``python tests/trainer_data.py OUT`` writes OUT/{digits,trec,fsdd} folders/files and OUT/{convnext,wav2vec2} models.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pytest

SHARED = Path(os.environ.get("HF_LABELSMOOTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TREC = SHARED / "data" / "trec"
FSDD = SHARED / "data" / "fsdd" / "recordings"


def requires_shared(path: Path) -> "pytest.MarkDecorator":
    """Skip when the project's shared data is absent, except in CI (CI=true), where its absence must fail."""
    import pytest

    return pytest.mark.skipif(not path.exists() and not os.environ.get("CI"),
                              reason=f"{path} not found: set HF_LABELSMOOTH_SHARED to the shared/ folder")


def make_digits_imagefolder(out: Path, n_train: int = 1200, n_val: int = 400) -> Path:
    """scikit-learn digits as 32×32 grayscale PNGs in out/{train,validation}/{digit}/i.png."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8).repeat(4, axis=1).repeat(4, axis=2)
    for split, rows in (("train", range(n_train)), ("validation", range(n_train, n_train + n_val))):
        for i in rows:
            folder = out / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i}.png")
    return out


def make_tiny_convnext(out: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-stage ConvNeXt (1 channel, 32×32) with its image processor, saved to `out`."""
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    torch.manual_seed(seed)
    config = ConvNextConfig(num_channels=1, patch_size=2, num_stages=3, hidden_sizes=[16, 32, 64], depths=[1, 1, 1],
                            drop_path_rate=0.0, num_labels=10)
    ConvNextForImageClassification(config).save_pretrained(out)
    ConvNextImageProcessor(size={"shortest_edge": 32}, image_mean=[0.3], image_std=[0.37]).save_pretrained(out)
    return out


def make_trec_csv(out: Path, n_train: int | None = None, n_test: int | None = None) -> Path:
    """TREC questions (Latin-1 source) as UTF-8 csv files out/{train,test}.csv with columns text, label (coarse)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, limit in (("train", n_train), ("test", n_test)):
        lines = (TREC / f"{split}.txt").read_text(encoding="latin-1").splitlines()
        rows = [(line.split(" ", 1)[1], line.split(":", 1)[0]) for line in lines if line.strip()]
        if limit is not None:
            rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[:limit]]
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return out


def make_fsdd_folders(out: Path, speakers: tuple[str, ...] = ("george", "jackson", "lucas", "nicolas"),
                      max_index: int = 50) -> Path:
    """FSDD recordings symlinked into out/{train,validation}/{digit}/ (dataset split: indices 0–4 validation)."""
    for path in sorted(FSDD.glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        if speaker not in speakers or int(index) >= max_index:
            continue
        folder = out / ("validation" if int(index) < 5 else "train") / digit
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / path.name).exists():
            (folder / path.name).symlink_to(path)
    return out


def make_tiny_wav2vec2(out: Path, seed: int = 0) -> Path:
    """A randomly initialised small Wav2Vec2 classifier (8 kHz feature extractor, no masking), saved to `out`."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32, 32, 32, 32), conv_stride=(5, 4, 2, 2), conv_kernel=(10, 8, 4, 4),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32,
                            feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0,
                            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                            final_dropout=0.0, layerdrop=0.0, num_labels=10)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(out)
    Wav2Vec2FeatureExtractor(sampling_rate=8000, do_normalize=True, return_attention_mask=True).save_pretrained(out)
    return out


def main(out: str) -> None:
    root = Path(out)
    make_digits_imagefolder(root / "digits")
    make_tiny_convnext(root / "convnext")
    make_trec_csv(root / "trec")
    make_fsdd_folders(root / "fsdd")
    make_tiny_wav2vec2(root / "wav2vec2")


if __name__ == "__main__":
    main(sys.argv[1])
