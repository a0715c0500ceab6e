"""The launcher's flags (``--loss-type`` ... ``--relation-matrix``): parsing, checks, the loss options they give.

Imports torch and the losses only (timm when a check needs timm's loss names), so that the command line stays fast.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, Sequence

from ...losses import get_loss_class, list_losses

__all__ = ["LaunchError", "LaunchOptions", "add_launcher_arguments", "relation_loss_types", "split_launcher_args"]


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
        from .loss import is_relation_loss_type

        from ...relations.card_text import hub_id

        if self.push_to_hub is not None and not hub_id(self.push_to_hub):
            raise LaunchError(f"Expected --push-to-hub to be a Hub repo id (owner/name) but got "
                              f"{self.push_to_hub!r:.120}. Pass e.g. --push-to-hub my-user/my-model.")
        name = loss_type or self.loss_type
        if name is None:
            return
        if not is_relation_loss_type(name):
            raise LaunchError(f"Expected --loss-type in {relation_loss_types()} but got {name!r}. timm's own losses "
                              "need no launcher: run train.py directly.")
        cls = get_loss_class(name)
        if cls.requires_matrix != (self.relation_matrix is not None):
            raise LaunchError(f"Expected --relation-matrix together with a --loss-type that takes a saved matrix "
                              f"({[n for n in list_losses() if get_loss_class(n).requires_matrix]}) but got "
                              f"--loss-type {name} and --relation-matrix {self.relation_matrix}. Pass both or neither.")
        if self.relation_update_every is not None and not cls.has_update_period(self.relation_top_n):
            raise LaunchError(f"Expected a --loss-type that refreshes on a period (ols; lspp / lls with "
                              f"--relation-top-n) with --relation-update-every but got --loss-type {name}.")
        if self.relation_top_n is not None and (not cls.supports_top_n or self.relation_top_n < 1):
            raise LaunchError(f"Expected --relation-top-n >= 1 with a --loss-type in "
                              f"{list_losses(supports_top_n=True)} but got {self.relation_top_n} with --loss-type "
                              f"{name}.")

    def relation_flags_set(self) -> list[str]:
        """The relation flags given (besides --loss-type), as ``--flag-name`` strings."""
        return [f"--{f.name.replace('_', '-')}" for f in fields(self)
                if f.name != "loss_type" and getattr(self, f.name) is not None]

    def loss_kwargs(self, loss_type: str, label_names: list[str]) -> dict[str, Any]:
        """Constructor options of `loss_type` from the flags (period, top-N, a saved matrix checked against the
        dataset's class names)."""
        kwargs: dict[str, Any] = {}
        period = get_loss_class(loss_type).period_option
        if self.relation_update_every is not None and period is not None:
            kwargs[period] = self.relation_update_every
        if self.relation_top_n is not None:
            kwargs["top_n"] = self.relation_top_n
        if self.relation_matrix is not None:
            from ...relations.provenance import load_prior

            matrix, _ = load_prior(self.relation_matrix, label_names)  # checks the class names, logs the prior
            kwargs.update(matrix=matrix, label_names=label_names)
        return kwargs


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
                       help="lr of LS++/LLS matrices (default: 10 x train.py's --lr with an SGD-like --opt, "
                            "max(--lr, 0.05) with an Adam-like one; docs/methods.md)")
    group.add_argument("--relation-weight-decay", type=float, default=None,
                       help="weight decay of LS++/LLS matrices (default: the method's, the network's for LS++ and 0 "
                            "for LLS)")
    group.add_argument("--relation-update-every", type=int, default=None,
                       help="refresh every N steps instead of each epoch (ols; lspp/lls with --relation-top-n)")
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
