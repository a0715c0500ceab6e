"""``hf-labelsmooth timm-train``: run timm's own, unmodified ``train.py`` with a class-relation loss.

    hf-labelsmooth timm-train path/to/train.py --loss-type lls --ls-alpha 0.1 <train.py's own flags>
    torchrun --nproc_per_node 2 --no-python hf-labelsmooth timm-train path/to/train.py --loss-type lls ...

Like ``accelerate launch``, the launcher takes its own flags (before or after the script path; exact names only) and
hands every other flag to the script, which runs as ``__main__`` in this process (`runpy`) after the loss has been
installed into timm (`hooks` lists where and why). train.py keeps its flags, checkpoints and output folder; the
launcher adds the relation loss, its optimizer group, the epoch-end hook and, on rank 0, the final matrix and card
in ``<train.py's output folder>/relation_matrix``. Importing this module does not import timm.
"""
from __future__ import annotations

import argparse
import logging
import runpy
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from ...losses import get_loss_class, list_losses

__all__ = ["LaunchError", "LaunchOptions", "LaunchResult", "add_launcher_arguments", "launch", "split_launcher_args"]

_logger = logging.getLogger(__name__)


class LaunchError(ValueError):
    """A launcher flag or a train.py flag that does not fit the relation loss (reported without a traceback)."""


@dataclass
class LaunchOptions:
    """The launcher's flags (``--loss-type`` ... ``--relation-matrix``); see `add_launcher_arguments`."""

    loss_type: str | None = None
    ls_alpha: float | None = None
    relation_lr: float | None = None
    relation_weight_decay: float | None = None
    relation_update_every: int | None = None
    relation_top_n: int | None = None
    relation_matrix: str | None = None

    def check(self) -> None:
        """Raise `LaunchError` for a flag combination the loss cannot take (before train.py starts)."""
        from .loss import is_relation_loss_type

        name = self.loss_type
        if name is not None and not is_relation_loss_type(name):
            raise LaunchError(f"Expected --loss-type in {relation_loss_types()} but got {name!r}. timm's own losses "
                              "need no launcher: run train.py directly.")
        cls = get_loss_class(name) if name is not None else None
        if cls is not None and cls.requires_matrix != (self.relation_matrix is not None):
            raise LaunchError(f"Expected --relation-matrix together with a --loss-type that takes a saved matrix "
                              f"({[n for n in list_losses() if get_loss_class(n).requires_matrix]}) but got "
                              f"--loss-type {name} and --relation-matrix {self.relation_matrix}. Pass both or neither.")
        if self.relation_update_every is not None and (cls is None or not cls.has_update_period(self.relation_top_n)):
            raise LaunchError(f"Expected a --loss-type that refreshes on a period (ols; lspp / lls with "
                              f"--relation-top-n) with --relation-update-every but got --loss-type {name}.")
        if self.relation_top_n is not None and (cls is None or not cls.supports_top_n or self.relation_top_n < 1):
            raise LaunchError(f"Expected --relation-top-n >= 1 with a --loss-type in "
                              f"{list_losses(supports_top_n=True)} but got {self.relation_top_n} with --loss-type {name}.")

    def relation_flags_set(self) -> list[str]:
        """The relation flags given (besides --loss-type), as ``--flag-name`` strings."""
        return [f"--{f.name.replace('_', '-')}" for f in fields(self)
                if f.name != "loss_type" and getattr(self, f.name) is not None]

    def loss_kwargs(self, loss_type: str, label_names: list[str]) -> dict[str, Any]:
        """Constructor options of `loss_type` from the flags (period, top-N, saved matrix checked against the classes)."""
        kwargs: dict[str, Any] = {}
        if self.relation_update_every is not None:
            kwargs[get_loss_class(loss_type).period_option] = self.relation_update_every
        if self.relation_top_n is not None:
            kwargs["top_n"] = self.relation_top_n
        if self.relation_matrix is not None:
            from ...relations import load_relations

            matrix = load_relations(self.relation_matrix)
            matrix.check_label_names(label_names)
            kwargs.update(matrix=matrix, label_names=label_names)
        return kwargs


@dataclass
class LaunchResult:
    """What a launch leaves: the task train.py trained (None without a relation loss) and where the matrix went."""

    task: nn.Module | None
    output_dir: str | None
    relations_dir: Path | None
    world_size: int
    rank: int


def relation_loss_types() -> list[str]:
    """Registered losses the launcher can put in place of train.py's criterion (those timm does not define)."""
    from .loss import is_relation_loss_type

    return [name for name in list_losses() if is_relation_loss_type(name)]


def add_launcher_arguments(parser: argparse.ArgumentParser, script: bool = True) -> None:
    """Add the launcher's flags (and, with `script`, ``TRAIN_PY`` followed by the script's flags) to `parser`."""
    group = parser.add_argument_group("class-relation label smoothing (hf_labelsmooth)")
    group.add_argument("--loss-type", default=None, metavar="NAME",
                       help=f"relation loss in place of train.py's criterion: {[n for n in list_losses() if n != 'ce']}")
    group.add_argument("--ls-alpha", type=float, default=None, help="mass moved off the one-hot (default: the method's)")
    group.add_argument("--relation-lr", type=float, default=None, help="lr of LS++/LLS matrices (default: train.py's)")
    group.add_argument("--relation-weight-decay", type=float, default=None,
                       help="weight decay of LS++/LLS matrices (default: the method's: the network's for LS++, 0 for LLS)")
    group.add_argument("--relation-update-every", type=int, default=None,
                       help="refresh every N steps instead of each epoch (ols; lspp/lls with --relation-top-n)")
    group.add_argument("--relation-top-n", type=int, default=None, help="keep N related classes per row (large K)")
    group.add_argument("--relation-matrix", default=None, metavar="DIR_OR_REPO",
                       help="saved matrix, the fixed prior of --loss-type relation_prior (class names must match)")
    if script:
        parser.add_argument("script", metavar="TRAIN_PY", help="timm's train.py (from a clone of the timm repository)")
        parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="...",
                            help="train.py's own flags (and the launcher's, anywhere among them)")


def split_launcher_args(argv: Sequence[str], options: LaunchOptions | None = None) -> tuple[LaunchOptions, list[str]]:
    """Take the launcher's flags out of `argv` (exact names only); the rest, in order, is for the script."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_launcher_arguments(parser, script=False)
    found, rest = parser.parse_known_args(list(argv))
    merged = LaunchOptions(**vars(options)) if options is not None else LaunchOptions()
    for key, value in vars(found).items():
        if value is not None:
            setattr(merged, key, value)
    return merged, rest


def launch(script: str | Path, script_args: Sequence[str], options: LaunchOptions | None = None) -> LaunchResult:
    """Run `script` (timm's train.py) as ``__main__`` with `script_args` and the relation loss of `options` installed.

    Args:
        script: Path of train.py.
        script_args: train.py's flags; launcher flags among them are taken out (`split_launcher_args`).
        options: Launcher flags given apart from `script_args`.

    Returns:
        The `LaunchResult` (the relation files are written on rank 0 only, after train.py returns).

    Raises:
        LaunchError: A flag that contradicts the relation loss, before any training.
        FileNotFoundError: `script` does not exist.
    """
    from .hooks import LaunchState, installed

    options, argv = split_launcher_args(script_args, options)
    options.check()
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"Expected the path of timm's train.py but got {str(script)!r} (no such file). It is "
                                "not in the timm wheel: take it from a clone of github.com/huggingface/pytorch-image-models.")
    state = LaunchState(options)
    with installed(state):
        run_script(path, with_default_smoothing(argv, options.loss_type or _script_loss_type(argv)))
    return state.finish()


def run_script(path: Path, argv: list[str]) -> None:
    """``python path argv...`` in this process: ``sys.argv`` and ``sys.path[0]`` as Python sets them, then restored."""
    saved_argv = sys.argv
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as err:
        if err.code not in (0, None):
            raise
    finally:
        sys.argv = saved_argv
        sys.path.remove(str(path.resolve().parent))


def _script_loss_type(argv: Sequence[str]) -> str | None:
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
    _logger.info(f"hf-labelsmooth: --loss-type {loss_type} smooths with --ls-alpha; passing --smoothing 0 to train.py.")
    return ["--smoothing", "0", *argv]


def _is_flag(token: str, flag: str) -> bool:
    """`token` names `flag` as argparse reads it (``--flag``, ``--flag=V`` or an unambiguous prefix like ``--smooth``)."""
    name = token.partition("=")[0]
    return name.startswith("--") and len(name) > 4 and flag.startswith(name)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, token in enumerate(argv):
        if token.startswith("--config="):
            return token.partition("=")[2]
        if token in ("-c", "--config") and i + 1 < len(argv):
            return argv[i + 1]
    return None
