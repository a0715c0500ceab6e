#!/usr/bin/env python
"""Small real data sets laid out as the training scripts read them, offline.

``python train_scripts/prepare_demo_data.py data`` writes:

- ``data/digits/{train,validation}/<digit>/*.png``: scikit-learn's handwritten digits (32×32 grayscale), an image
  folder for ``run_image_classification.py --dataset_name data/digits``;
- ``data/trec/{train,test}.csv`` (columns text, label): TREC questions with their 6 coarse types, for
  ``run_text_classification.py --train_file ... --validation_file ...`` (needs the project's shared data);
- ``data/fsdd/{train,validation}/<digit>/*.wav``: spoken digits (FSDD, 8 kHz), an audio folder for
  ``run_audio_classification.py --dataset_name data/fsdd`` (needs the project's shared data).

The shared data is read from ``--shared`` (default: ``$HF_LABELSMOOTH_SHARED`` or ``../shared`` beside the clone).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

DEFAULT_SHARED = Path(os.environ.get("HF_LABELSMOOTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))


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


def make_trec_csv(out: Path, trec: Path, n_train: int | None = None, n_test: int | None = None) -> Path:
    """TREC questions (Latin-1 source) as UTF-8 csv files out/{train,test}.csv with columns text, label (coarse)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, limit in (("train", n_train), ("test", n_test)):
        lines = (trec / f"{split}.txt").read_text(encoding="latin-1").splitlines()
        rows = [(line.split(" ", 1)[1], line.split(":", 1)[0]) for line in lines if line.strip()]
        if limit is not None:
            rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[:limit]]
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return out


def make_fsdd_folders(out: Path, recordings: Path, speakers: tuple[str, ...] = ("george", "jackson", "lucas",
                                                                                 "nicolas"),
                      max_index: int = 50) -> Path:
    """FSDD recordings symlinked into out/{train,validation}/{digit}/ (dataset split: indices 0–4 validation)."""
    for path in sorted(recordings.glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        if speaker not in speakers or int(index) >= max_index:
            continue
        folder = out / ("validation" if int(index) < 5 else "train") / digit
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / path.name).exists():
            (folder / path.name).symlink_to(path.resolve())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write digits/, trec/ and fsdd/ into")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the project's shared/ folder")
    args = parser.parse_args(argv)
    print(f"digits: {make_digits_imagefolder(args.out / 'digits')}")
    trec, fsdd = args.shared / "data" / "trec", args.shared / "data" / "fsdd" / "recordings"
    for name, source, make in (("trec", trec, make_trec_csv), ("fsdd", fsdd, make_fsdd_folders)):
        if source.exists():
            print(f"{name}: {make(args.out / name, source)}")
        else:
            print(f"{name}: skipped, {source} not found (pass --shared)", file=sys.stderr)


if __name__ == "__main__":
    main()
