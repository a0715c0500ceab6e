"""What ``hf-labelsmooth timm-train`` checks before train.py builds anything: a relation loss, a script the hooks
can reach, and (once train.py has parsed its flags) a device this machine has. Each refusal is one line naming the
fix, before any data or model is loaded. Imports neither timm nor train.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...losses import get_loss_class
from .options import LaunchError, relation_loss_types

__all__ = ["check_device", "check_entry", "check_script_source", "launchable_loss_types"]

# What the launcher replaces in timm (hooks.py): a script that names neither builds no criterion the loss can replace.
_HOOKED_NAMES = ("ClassificationTask", "create_classification_loss")


def check_script_source(path: Path) -> None:
    """`path` is a train.py that builds timm's ``ClassificationTask`` (or uses ``create_classification_loss``).

    Raises:
        LaunchError: Another script, or an older train.py that builds its own criterion: the relation loss would
            never be installed and the run would train without it.
    """
    source = path.read_text(encoding="utf-8", errors="replace")
    if not any(name in source for name in _HOOKED_NAMES):
        raise LaunchError(f"Expected timm's train.py (timm >= 1.0.31, which builds timm.task.ClassificationTask) but "
                          f"got {str(path)!r}, which builds no ClassificationTask: the relation loss would never be "
                          "installed. Take train.py from a clone of github.com/huggingface/pytorch-image-models, "
                          "or use hf_labelsmooth.integrations.timm.create_classification_loss in your own loop.")


def check_device(args: Any) -> None:
    """train.py's parsed ``--device`` is one this machine has (train.py's default is ``cuda``).

    Raises:
        LaunchError: A CUDA device on a machine without CUDA, before train.py builds its model or data.
    """
    device = str(getattr(args, "device", "cpu") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LaunchError(f"Expected --device cpu on this machine (no CUDA GPU) but got --device {device} (train.py's "
                          "default is cuda). Add --device cpu (several CPU processes: torchrun --nproc_per_node N "
                          "--no-python hf-labelsmooth timm-train TRAIN_PY ... --device cpu).")


def launchable_loss_types() -> list[str]:
    """The relation losses the launcher trains with class labels (not those for soft targets only, e.g. soft_kl,
    which equals cross-entropy there)."""
    return [name for name in relation_loss_types() if not get_loss_class(name).spec.soft_targets_only]


def check_entry(path: Path, loss_type: str | None) -> None:
    """Refuse a launch that cannot train a relation loss, before train.py runs (`check_device` runs once train.py
    has parsed its flags).

    Args:
        path: The script (an existing file).
        loss_type: ``--loss-type``, or the relation loss train.py's own ``--loss`` names.

    Raises:
        LaunchError: No relation loss, one that smooths nothing with class labels, or a script the launcher cannot
            hook.
    """
    if loss_type is None:
        raise LaunchError(f"Expected --loss-type (one of {launchable_loss_types()}) but got none: without a relation "
                          "loss the launcher only runs plain timm. Pass --loss-type NAME, or run train.py directly.")
    if get_loss_class(loss_type).default_alpha == 0.0:
        raise LaunchError(f"Expected --loss-type in {launchable_loss_types()} but got "
                          f"{loss_type!r}, which smooths nothing with class labels (alpha 0: plain cross-entropy). "
                          "Use --loss-type ls for uniform smoothing or a relation method.")
    check_script_source(path)
