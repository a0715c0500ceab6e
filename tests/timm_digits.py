"""Write scikit-learn's digits as a timm ImageFolder of PNG files (``root/train/<class>/*.png``, ``root/validation``),
and find timm's train.py for the launcher tests.

Usable as a script for real runs: ``python tests/timm_digits.py DIR [--per-class N]``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digits_imagefolder(root: str | Path, train_per_class: int = 24, val_per_class: int = 8,
                             size: int = 16) -> list[str]:
    """Write `train_per_class` + `val_per_class` PNGs per digit class (upscaled to `size`², grayscale).

    Args:
        root: Output directory (``train/`` and ``validation/`` are created in it).
        train_per_class: Training images per class (taken in dataset order).
        val_per_class: Validation images per class (the following ones).
        size: Side of the written PNG (the 8×8 digits are upscaled with nearest neighbour).

    Returns:
        The class names, in the order timm's ImageFolder reader assigns indices (sorted).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(root)
    for label, name in enumerate(CLASS_NAMES):
        idx = np.flatnonzero(digits.target == label)
        if len(idx) < train_per_class + val_per_class:
            raise ValueError(f"Expected at most {len(idx)} images per class but got "
                             f"{train_per_class} + {val_per_class} for class {name!r}.")
        for split, chosen in (("train", idx[:train_per_class]), ("validation", idx[train_per_class:][:val_per_class])):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).resize((size, size), Image.NEAREST).save(folder / f"{i:04d}.png")
    return sorted(CLASS_NAMES)


def timm_train_py() -> Path | None:
    """timm's unmodified train.py (``$TIMM_TRAIN_PY``, else ``shared/timm-train/train.py`` beside a parent folder)."""
    if os.environ.get("TIMM_TRAIN_PY"):
        return Path(os.environ["TIMM_TRAIN_PY"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "timm-train" / "train.py"
        if candidate.is_file():
            return candidate
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--per-class", type=int, default=138, help="training images per class (<= 174 - val)")
    parser.add_argument("--val-per-class", type=int, default=36)
    parser.add_argument("--size", type=int, default=16, help="side of the PNG files")
    args = parser.parse_args()
    print(write_digits_imagefolder(args.root, args.per_class, args.val_per_class, args.size))
