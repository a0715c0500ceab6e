"""The tests' one writer of scikit-learn's digits as an image folder of PNG files (``root/train/<class>/*.png``,
``root/validation``): read by timm's ImageFolder and by the `imagefolder` loader of the training scripts.

Usable as a script for real runs: ``python -m tests.support.digits DIR [--per-class N]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # sorted != label order
DIGIT_NAMES = tuple(str(i) for i in range(10))  # the folder names of train_scripts/prepare_demo_data.py


def write_digits_imagefolder(root: str | Path, train_per_class: int = 24, val_per_class: int = 8,
                             size: int = 16, names: tuple[str, ...] = CLASS_NAMES) -> list[str]:
    """Write `train_per_class` + `val_per_class` PNGs per digit class (upscaled to `size`², grayscale).

    Args:
        root: Output directory (``train/`` and ``validation/`` are created in it).
        train_per_class: Training images per class (taken in dataset order).
        val_per_class: Validation images per class (the following ones).
        size: Side of the written PNG (the 8×8 digits are upscaled with nearest neighbour).
        names: The class folder names, in label order.

    Returns:
        The class names, in the order timm's ImageFolder reader assigns indices (sorted).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(root)
    for label, name in enumerate(names):
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
    return sorted(names)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--per-class", type=int, default=138, help="training images per class (<= 174 - val)")
    parser.add_argument("--val-per-class", type=int, default=36)
    parser.add_argument("--size", type=int, default=16, help="side of the PNG files")
    args = parser.parse_args()
    print(write_digits_imagefolder(args.root, args.per_class, args.val_per_class, args.size))
