"""The launcher's flags (``--loss-type`` ... ``--relation-matrix``): parsing, and their mapping onto
`hf_labelsmooth.options.RelationOptions` (which checks them and builds the loss).

Imports torch and the losses only (timm when a check needs timm's loss names), so that the command line stays fast.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Sequence

from ...losses import list_losses
from ...optim import describe_default_relation_lr
from ...options import RelationOptions

__all__ = ["LaunchError", "LaunchOptions", "add_launcher_arguments", "relation_loss_types", "split_launcher_args"]


# `RelationOptions` field -> the `LaunchOptions` field (flag) that sets it (docs/CONTRIBUTING.md has the table)
LAUNCHER_FIELDS = {"method": "loss_type", "alpha": "ls_alpha", "update_every": "relation_update_every",
                   "top_n": "relation_top_n", "prior": "relation_matrix", "relation_lr": "relation_lr",
                   "relation_weight_decay": "relation_weight_decay"}


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
    push_to_hub: str | None = None
    hub_private: bool | None = None

    def check(self, loss_type: str | None = None) -> None:
        """Raise `LaunchError` for flags the loss cannot take (`loss_type`: the run's loss, default ``--loss-type``).

        Without a loss nothing is checked here: train.py may still choose one (``--loss``), and relation flags
        without any loss are refused once its flags are parsed.
        """
        from ...relations.card_text import hub_id
        from .loss import is_relation_loss_type

        if self.push_to_hub is not None and not hub_id(self.push_to_hub):
            raise LaunchError(f"Expected --push-to-hub to be a Hub repo id (owner/name) but got "
                              f"{self.push_to_hub!r:.120}. Pass e.g. --push-to-hub my-user/my-model.")
        name = loss_type or self.loss_type
        if name is None:
            return
        if not is_relation_loss_type(name):
            raise LaunchError(f"Expected --loss-type in {relation_loss_types()} but got {name!r}. timm's own losses "
                              "need no launcher: run train.py directly.")
        try:
            self.relation_options(name).check({spec: _flag(field) for spec, field in LAUNCHER_FIELDS.items()})
        except ValueError as err:
            raise LaunchError(str(err)) from err

    def relation_flags_set(self) -> list[str]:
        """The relation flags given (besides --loss-type), as ``--flag-name`` strings."""
        return [_flag(f.name) for f in fields(self) if f.name != "loss_type" and getattr(self, f.name) is not None]

    def relation_options(self, loss_type: str | None = None) -> RelationOptions:
        """These flags in the package's vocabulary (`hf_labelsmooth.options.RelationOptions`) for the run's loss."""
        method = loss_type or self.loss_type
        if method is None:
            raise LaunchError(f"Expected --loss-type (one of {relation_loss_types()}) but got none.")
        values = {spec: getattr(self, name) for spec, name in LAUNCHER_FIELDS.items()}
        return RelationOptions(**{**values, "method": method})


def _flag(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def relation_loss_types() -> list[str]:
    """Registered losses the launcher can put in place of train.py's criterion (those timm does not define)."""
    from .loss import is_relation_loss_type

    return [name for name in list_losses() if is_relation_loss_type(name)]


def add_launcher_arguments(parser: argparse.ArgumentParser, script: bool = True) -> None:
    """Add the launcher's flags (and, with `script`, ``TRAIN_PY`` followed by the script's flags) to `parser`."""
    group = parser.add_argument_group("class-relation label smoothing (hf_labelsmooth)")
    group.add_argument("--loss-type", default=None, metavar="NAME",
                       help=f"relation loss in place of train.py's criterion: {[n for n in list_losses() if n != 'ce']}"
                       "; a newer train.py's own --loss NAME works too")
    group.add_argument("--ls-alpha", type=float, default=None,
                       help="mass moved off the one-hot (default: the method's)")
    group.add_argument("--relation-lr", type=float, default=None,
                       help=f"lr of LS++/LLS matrices (default: {describe_default_relation_lr('--lr')} (--opt); "
                            "docs/methods.md)")
    group.add_argument("--relation-weight-decay", type=float, default=None,
                       help="weight decay of LS++/LLS matrices (default: the method's, the network's for LS++ and 0 "
                            "for LLS)")
    group.add_argument("--relation-update-every", type=int, default=None,
                       help="refresh every N optimizer steps (train.py's updates: --grad-accum-steps counted as the "
                            "Trainer counts them) instead of each epoch (ols; lspp/lls with --relation-top-n)")
    group.add_argument("--relation-top-n", type=int, default=None, help="keep N related classes per row (large K)")
    group.add_argument("--relation-matrix", default=None, metavar="DIR_OR_REPO",
                       help="saved matrix, the fixed prior of --loss-type relation_prior (class names must match)")
    group.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                       help="after a successful run, upload (rank 0, one commit) the final weights and a config that "
                            "timm.create_model('hf-hub:REPO_ID', pretrained=True) loads, relation_matrix/ and the card")
    group.add_argument("--hub-private", action="store_true", default=None,
                       help="create the --push-to-hub repo as private")
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
