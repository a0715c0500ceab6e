"""The artifact format: config.json's fields, the tensors each kind stores, their checks, the upgrade of old versions.

File names and `FORMAT_VERSION` are in `constants`; docs/format.md describes the same format for readers. An
artifact folder may come from anyone (a Hub repo, a shared drive): every field gets its type checked here, and the
tensors a config allows are checked against the safetensors header before any data is read, so a malformed folder
gives one clear error instead of a TypeError deep inside a constructor.

Versions: `read_config` upgrades a config of an older format version step by step (`UPGRADES[v]` turns version v
into v + 1) before any check, so the rest of the package only ever sees the current version; a newer version is
refused with the fix (upgrade hf_labelsmooth).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import TensorSpecs, read_json
from .checks import LOGITS_KINDS
from .constants import ARTIFACT_DIR, CONFIG_FILE, FORMAT_VERSION, LIBRARY_NAME, TENSOR_FILES

Rule = tuple[Callable[[Any], bool], str]
Config = dict[str, Any]
FIX = ("The file is corrupt or was edited by hand: re-save it with save_pretrained or re-download it "
       "(force_download=True).")
SHA256 = re.compile(r"[0-9a-f]{64}")
REQUIRED = ("num_classes", "label_names")
METADATA = ("method", "alpha", "source_model", "dataset", "epochs", "training")  # artifact attributes kept as fields


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


COMMON: dict[str, Rule] = {  # fields of every kind ("library_name" and "format_version": `read_config`)
    "artifact": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "num_classes": (lambda v: is_count(v, 2), "an integer >= 2"),
    "label_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of strings"),
    "method": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "source_model": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "dataset": (optional(lambda v: isinstance(v, str)), "a string or null"),
    "alpha": (optional(lambda v: is_number(v) and 0 <= v <= 1), "a number in [0, 1] or null"),
    "epochs": (optional(lambda v: is_number(v) and v >= 0), "a finite number >= 0 or null"),
    "extra": (optional(lambda v: isinstance(v, dict)), "a JSON object or null"),
    "training": (optional(lambda v: isinstance(v, dict)), "a JSON object or null"),
    "sha256": (optional(is_digests), f"an object mapping {list(TENSOR_FILES)} to sha256 hex digests"),
}
KIND_FIELDS: dict[str, dict[str, Rule]] = {  # fields of one kind (config.json's "artifact")
    "matrix": {"logits_kind": (optional(lambda v: v in LOGITS_KINDS), f"one of {list(LOGITS_KINDS)} or null")},
    "topk": {"top_n": (lambda v: is_count(v, 1), "an integer >= 1"),
             "include_self": (lambda v: isinstance(v, bool), "true or false")},
}


def header(kind: str) -> Config:
    """The first fields of every config.json: who wrote it, in which format version, which kind of artifact."""
    return {"library_name": LIBRARY_NAME, "format_version": FORMAT_VERSION, "artifact": kind}


def kind_of(config: Config) -> Any:
    """The artifact kind a config names (``"matrix"`` when it names none); not checked."""
    return config.get("artifact") or "matrix"


def tensor_shapes(config: Config) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """(required, optional) tensor shapes, by tensor name, that a checked config justifies."""
    k = config["num_classes"]
    if kind_of(config) == "matrix":
        return {"relation_matrix": (k, k)}, {"logits": (k, k)}
    n = config.get("top_n")
    if n is None or n > k:
        raise ValueError(f"Expected `top_n` in [1, num_classes={k}] in the config.json of a top-N table but got "
                         f"{n}. {FIX}")
    return {"indices": (k, n), "values": (k, n)}, {}


def check_config(config: Config, path: Path) -> None:
    """Check every known field of a (current-version) config, those of its kind, and the label count.

    Raises:
        ValueError: Naming the first bad field, its value and the fix.
    """
    missing = [name for name in REQUIRED if name not in config]
    if missing:
        raise ValueError(f"Expected fields {list(REQUIRED)} in {path} but got none for {missing}. {FIX}")
    for name, (test, description) in {**COMMON, **KIND_FIELDS.get(kind_of(config), {})}.items():
        if name in config and not test(config[name]):
            raise ValueError(f"Expected `{name}` in {path} to be {description} but got {config[name]!r:.80}. {FIX}")
    if len(config["label_names"]) != config["num_classes"]:
        raise ValueError(f"Expected {config['num_classes']} label names (num_classes) in {path} but got "
                         f"{len(config['label_names'])}. {FIX}")


def check_tensor_specs(specs: TensorSpecs, config: Config, path: Path) -> None:
    """Check a safetensors header declares the tensors `config` requires, maybe its optional ones, nothing else.

    Raises:
        ValueError: Unknown or missing tensors, or a shape the config does not justify.
    """
    required, optional_tensors = tensor_shapes(config)
    allowed = {**required, **optional_tensors}
    unknown, missing = sorted(set(specs) - set(allowed)), sorted(set(required) - set(specs))
    if unknown or missing:
        raise ValueError(f"Expected tensors {sorted(required)} (optional: {sorted(optional_tensors)}) in {path} but "
                         f"got {sorted(specs)[:8]}. {FIX}")
    for name, (_, shape) in specs.items():
        if shape != allowed[name]:
            raise ValueError(f"Expected tensor {name!r} of shape {list(allowed[name])} (from config.json) in {path} "
                             f"but got {list(shape)[:8]}. {FIX}")


def _from_version_0(config: Config) -> Config:
    """Version 0, a config without ``format_version`` (written before 0.1.0), has version 1's fields."""
    return config


UPGRADES: dict[int, Callable[[Config], Config]] = {0: _from_version_0}  # version v -> its config as version v + 1


def upgrade(config: Config, path: str | os.PathLike = CONFIG_FILE) -> Config:
    """`config` (any format version up to `FORMAT_VERSION`) as a config of the current version (a new dict).

    Raises:
        ValueError: A ``format_version`` that is not an integer >= 0, or newer than this hf_labelsmooth reads.
    """
    version = config.get("format_version", 0)
    if type(version) is not int or version < 0:
        raise ValueError(f"Expected `format_version` in {path} to be an integer >= 0 but got {version!r:.80}: the "
                         "file is corrupt or was edited by hand. Re-save it or re-download it (force_download=True).")
    if version > FORMAT_VERSION:
        raise ValueError(f"Expected a relation artifact of format version <= {FORMAT_VERSION} but got {version} in "
                         f"{path}: it was written by a newer hf_labelsmooth. Upgrade hf_labelsmooth "
                         "(pip install -U hf_labelsmooth).")
    config = dict(config)
    for step in range(version, FORMAT_VERSION):
        config = UPGRADES[step](config)
    return {**config, "format_version": FORMAT_VERSION}


def read_config(path: Path) -> Config:
    """An artifact's config.json, written by hf_labelsmooth, upgraded to the current format version (not checked:
    see `check_config`)."""
    config = read_json(path, CONFIG_FILE)
    if config.get("library_name") != LIBRARY_NAME:
        raise ValueError(f"Expected a config.json written by ClassRelationMatrix.save_pretrained (library_name "
                         f"'{LIBRARY_NAME}') but got another one at {path} (a model's config?). Pass the folder that "
                         f"holds the relation matrix artifact (e.g. <output_dir>/{ARTIFACT_DIR}).")
    return upgrade(config, path)
