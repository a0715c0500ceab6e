"""What the launcher reads from train.py's command line, parsed flags and datasets: loss, refusals, card fields."""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from .loss import is_relation_loss_type
from .options import LaunchError, LaunchOptions, relation_loss_types

__all__ = ["check_script_args", "dataset_name", "label_names", "mixup_active", "script_loss_type",
           "with_default_smoothing"]

_logger = logging.getLogger(__name__)
# train.py flags whose criterion or task the relation loss cannot replace (attribute -> flag)
_CONFLICTS = {"jsd_loss": "--jsd-loss", "bce_loss": "--bce-loss", "kd_model_name": "--kd-model-name"}


def mixup_active(args: Any) -> bool:
    """Whether train.py turns Mixup/CutMix on (its own condition): the loss then gets soft targets."""
    return (getattr(args, "mixup", 0.0) or 0.0) > 0 or (getattr(args, "cutmix", 0.0) or 0.0) > 0 or \
        getattr(args, "cutmix_minmax", None) is not None


def check_script_args(options: LaunchOptions, args: Any) -> str | None:
    """The relation loss of the run (``--loss-type``, or a newer train.py's ``--loss NAME``), after the refusals.

    Raises:
        LaunchError: Two different losses, relation flags without a relation loss, ``--smoothing > 0`` (Mixup and
            the loss would smooth twice), or a train.py criterion/task the relation loss cannot replace.
    """
    name = _chosen_loss(options, getattr(args, "loss", None))
    if name is None:
        if options.relation_flags_set():
            raise LaunchError(f"Expected --loss-type (one of {relation_loss_types()}) with "
                              f"{' '.join(options.relation_flags_set())} but got none.")
        return None
    options.check(name)
    smoothing = getattr(args, "smoothing", 0.0) or 0.0
    if smoothing > 0:
        why = "Mixup/CutMix apply it to the soft targets and the loss would smooth them twice" if mixup_active(args) \
            else "the relation loss takes its smoothing weight from --ls-alpha"
        raise LaunchError(f"Expected --smoothing 0 with --loss-type {name} but got {smoothing}: {why}. Drop "
                          "--smoothing (the launcher then passes 0) and set --ls-alpha instead.")
    for attr, flag in _CONFLICTS.items():
        if getattr(args, attr, None):
            raise LaunchError(f"Expected no {flag} with --loss-type {name} but got {flag} {getattr(args, attr)}: the "
                              f"launcher replaces train.py's cross-entropy ClassificationTask criterion. Drop {flag}.")
    return name


def _chosen_loss(options: LaunchOptions, script_loss: str | None) -> str | None:
    """``--loss-type``, or train.py's own ``--loss`` when it names a relation loss; two different ones are refused."""
    name = options.loss_type
    if is_relation_loss_type(script_loss):
        if name not in (None, script_loss):
            raise LaunchError(f"Expected one relation loss but got --loss-type {name} and train.py's --loss "
                              f"{script_loss}. Pass only one of them.")
        return script_loss
    if name is not None and script_loss not in (None, "ce"):
        raise LaunchError(f"Expected train.py's --loss ce (or none) with --loss-type {name} but got --loss "
                          f"{script_loss}: the relation loss replaces train.py's criterion. Drop one of them.")
    return name


def label_names(dataset: Any, num_classes: int) -> list[str]:
    """Class names in label order (ImageFolder ``reader.class_to_idx`` or ``classes``); ids when they do not fit."""
    class_to_idx = getattr(getattr(dataset, "reader", None), "class_to_idx", None)
    if class_to_idx:
        names = [name for name, _ in sorted(class_to_idx.items(), key=lambda item: item[1])]
    else:
        names = list(getattr(dataset, "classes", None) or [])
    if len(names) != num_classes:
        _logger.warning(f"hf-labelsmooth: the training set names {len(names)} classes and the model has "
                        f"{num_classes} outputs: the relation matrix is labelled with class ids (pass train.py "
                        f"--num-classes {len(names) or 'K'} to train on the dataset's classes).")
        return [str(i) for i in range(num_classes)]
    return [str(name) for name in names]


def dataset_name(args: Any) -> str | None:
    """The card's dataset field: the data folder's name, else train.py's ``--dataset``."""
    folder = getattr(args, "data_dir", None) or getattr(args, "data", None)
    return os.path.basename(os.path.normpath(folder)) if folder else (getattr(args, "dataset", None) or None)


def script_loss_type(argv: Sequence[str]) -> str | None:
    """A relation loss chosen with train.py's own ``--loss NAME`` (newer train.py), else None."""
    for i, token in enumerate(argv):
        value = token.partition("=")[2] if token.startswith("--loss=") else \
            argv[i + 1] if token == "--loss" and i + 1 < len(argv) else None
        if value is not None and value in relation_loss_types():
            return value
    return None


def with_default_smoothing(argv: list[str], loss_type: str | None) -> list[str]:
    """Prepend ``--smoothing 0`` for a relation loss when neither `argv` nor its ``--config`` file sets it.

    train.py's ``--smoothing`` defaults to 0.1 for its cross-entropy; Mixup/CutMix apply it to the soft targets, and
    a relation loss smooths them again with ``--ls-alpha``. An explicit value > 0 is refused later (`hooks`).
    """
    if loss_type is None or any(_is_flag(token, "--smoothing") for token in argv):
        return argv
    config = _config_path(argv)
    if config is not None:
        import yaml

        with open(config) as f:
            if "smoothing" in (yaml.safe_load(f) or {}):
                return argv
    return ["--smoothing", "0", *argv]


def _is_flag(token: str, flag: str) -> bool:
    """`token` names `flag` as argparse reads it: ``--flag``, ``--flag=V`` or a prefix such as ``--smooth``."""
    name = token.partition("=")[0]
    return name.startswith("--") and len(name) > 4 and flag.startswith(name)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, token in enumerate(argv):
        if token.startswith("--config="):
            return token.partition("=")[2]
        if token in ("-c", "--config") and i + 1 < len(argv):
            return argv[i + 1]
    return None
