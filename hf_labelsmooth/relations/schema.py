"""The config.json schema of relation artifacts, and the tensors a config allows: both checked before any data is read.

An artifact folder may come from anyone (a Hub repo, a shared drive): every field gets its type checked here, so a
malformed file gives one clear error instead of a TypeError deep inside a constructor.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .header import TensorSpecs
from .io import TENSOR_FILES

Rule = tuple[Callable[[Any], bool], str]
FIX = ("The file is corrupt or was edited by hand: re-save it with save_pretrained or re-download it "
       "(force_download=True).")
SHA256 = re.compile(r"[0-9a-f]{64}")
REQUIRED = ("num_classes", "label_names")


def is_count(value: Any, minimum: int = 0) -> bool:
    """A JSON integer (not a bool) >= `minimum`."""
    return type(value) is int and value >= minimum


def is_number(value: Any) -> bool:
    """A finite JSON number (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value)


def optional(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`test`, also accepting null."""
    return lambda value: value is None or test(value)


def is_digests(value: Any) -> bool:
    """A mapping from tensor file names of the artifact to lowercase sha256 hex digests."""
    return isinstance(value, dict) and all(name in TENSOR_FILES and isinstance(digest, str) and
                                           SHA256.fullmatch(digest) for name, digest in value.items())


COMMON: dict[str, Rule] = {
    "artifact": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "num_classes": (lambda v: is_count(v, 2), "an integer >= 2"),
    "label_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of strings"),
    "method": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "source_model": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "dataset": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "alpha": (optional(is_number), "a finite number or null"),
    "epochs": (optional(lambda v: is_number(v) and v >= 0), "a finite number >= 0 or null"),
    "extra": (optional(lambda v: isinstance(v, dict)), "a JSON object or null"),
    "training": (optional(lambda v: isinstance(v, dict)), "a JSON object or null"),
    "sha256": (optional(is_digests), f"an object mapping {list(TENSOR_FILES)} to sha256 hex digests"),
}


def check_config(config: dict[str, Any], rules: dict[str, Rule], path: Path) -> None:
    """Check every known field of an artifact config (`COMMON` plus the kind's `rules`) and the label count.

    Raises:
        ValueError: Naming the first bad field, its value and the fix.
    """
    missing = [name for name in REQUIRED if name not in config]
    if missing:
        raise ValueError(f"Expected fields {list(REQUIRED)} in {path} but got none for {missing}. {FIX}")
    for name, (test, description) in {**COMMON, **rules}.items():
        if name in config and not test(config[name]):
            raise ValueError(f"Expected `{name}` in {path} to be {description} but got {config[name]!r:.80}. {FIX}")
    if len(config["label_names"]) != config["num_classes"]:
        raise ValueError(f"Expected {config['num_classes']} label names (num_classes) in {path} but got "
                         f"{len(config['label_names'])}. {FIX}")


def check_tensor_specs(specs: TensorSpecs, required: dict[str, tuple[int, ...]],
                       optional_tensors: dict[str, tuple[int, ...]], path: Path) -> None:
    """Check a safetensors header declares the `required` tensors, maybe the optional ones, nothing else, in shape.

    Raises:
        ValueError: Unknown or missing tensors, or a shape the config does not justify.
    """
    allowed = {**required, **optional_tensors}
    unknown, missing = sorted(set(specs) - set(allowed)), sorted(set(required) - set(specs))
    if unknown or missing:
        raise ValueError(f"Expected tensors {sorted(required)} (optional: {sorted(optional_tensors)}) in {path} but "
                         f"got {sorted(specs)[:8]}. {FIX}")
    for name, (_, shape) in specs.items():
        if shape != allowed[name]:
            raise ValueError(f"Expected tensor {name!r} of shape {list(allowed[name])} (from config.json) in {path} "
                             f"but got {list(shape)[:8]}. {FIX}")
