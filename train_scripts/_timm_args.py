"""Flags of ``train_scripts/train_timm.py``: timm ``train.py``'s names and defaults, plus the relation-loss flags.

Which flags a method accepts (period, top-N, saved matrix) and its default alpha are read from the loss registry.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from hf_labelsmooth.integrations.timm import is_relation_loss_type, list_classification_loss_types
from hf_labelsmooth.losses.registry import describe_defaults, get_loss_class, list_losses

# (flag, type, default, help); type `bool` = store_true flag; type `list` entries are (flag, elem type, nargs, default)
_DATA = [("--data-dir", str, None, "path to the dataset root (ImageFolder with train/ and validation/ folders)"),
         ("--dataset", str, "", "timm dataset type ('' = ImageFolder)"), ("--train-split", str, "train", None),
         ("--val-split", str, "validation", None), ("--class-map", str, "", "class to idx mapping file")]
_MODEL = [("--model", str, "resnet50", None), ("--pretrained", bool, False, None),
          ("--num-classes", int, None, "number of classes (default: the dataset's)"),
          ("--img-size", int, None, None), ("--crop-pct", float, None, "validation center-crop fraction"),
          ("--interpolation", str, "", None), ("--batch-size", int, 128, "batch size per process"),
          ("--validation-batch-size", int, None, None), ("--drop", float, 0.0, None),
          ("--drop-path", float, None, None),
          ("--resume", str, "", "resume model, loss, optimizer and EMA state from this checkpoint"),
          ("--no-resume-opt", bool, False, None)]
_OPT = [("--opt", str, "sgd", None), ("--opt-eps", float, None, None), ("--momentum", float, 0.9, None),
        ("--weight-decay", float, 2e-5, None), ("--clip-grad", float, None, None), ("--clip-mode", str, "norm", None),
        ("--layer-decay", float, None, None), ("--sched", str, "cosine", None),
        ("--sched-on-updates", bool, False, None),
        ("--lr", float, None, "learning rate (default: lr-base * global batch / lr-base-size)"),
        ("--lr-base", float, 0.1, None), ("--lr-base-size", int, 256, None), ("--warmup-lr", float, 1e-5, None),
        ("--min-lr", float, 0.0, None), ("--epochs", int, 300, None), ("--start-epoch", int, None, None),
        ("--decay-epochs", float, 90, None), ("--warmup-epochs", int, 5, None), ("--warmup-prefix", bool, False, None),
        ("--cooldown-epochs", int, 0, None), ("--patience-epochs", int, 10, None), ("--decay-rate", float, 0.1, None)]
_AUG = [("--no-aug", bool, False, None), ("--hflip", float, 0.5, None), ("--vflip", float, 0.0, None),
        ("--color-jitter", float, 0.4, None), ("--aa", str, None, None), ("--reprob", float, 0.0, None),
        ("--remode", str, "pixel", None), ("--recount", int, 1, None), ("--mixup", float, 0.0, "mixup alpha"),
        ("--cutmix", float, 0.0, "cutmix alpha"), ("--mixup-prob", float, 1.0, None),
        ("--mixup-switch-prob", float, 0.5, None), ("--mixup-mode", str, "batch", None),
        ("--mixup-off-epoch", int, 0, None), ("--train-interpolation", str, "random", None),
        ("--smoothing", float, None, "timm label smoothing (default: 0.1 for timm's losses, 0 for relation losses, "
                                     "which smooth with --ls-alpha)")]
_MISC = [("--workers", int, 4, None), ("--device", str, "cuda" if torch.cuda.is_available() else "cpu", None),
         ("--model-ema", bool, False, None), ("--model-ema-decay", float, 0.9998, None),
         ("--model-ema-warmup", bool, False, None), ("--amp", bool, False, None),
         ("--amp-dtype", str, "float16", "float16 or bfloat16"), ("--seed", int, 42, None),
         ("--log-interval", int, 50, None), ("--checkpoint-hist", int, 10, None),
         ("--output", str, "", "output root (default ./output)"), ("--experiment", str, "", None),
         ("--eval-metric", str, "top1", None), ("--no-ddp-bb", bool, False, None)]
_LISTS = [("--input-size", int, 3, None), ("--mean", float, "+", None), ("--std", float, "+", None),
          ("--opt-betas", float, "+", None), ("--decay-milestones", int, "+", [90, 180, 270]),
          ("--scale", float, "+", [0.08, 1.0]), ("--ratio", float, "+", [3.0 / 4.0, 4.0 / 3.0]),
          ("--cutmix-minmax", float, "+", None)]
_ALIASES = {"--relation-update-every": ["--ols-update-every"], "--batch-size": ["-b"],
            "--validation-batch-size": ["-vb"], "--workers": ["-j"], "--dataset": ["-d"]}


def _add_flags(group: argparse._ArgumentGroup, flags: list[tuple[str, Any, Any, str | None]]) -> None:
    for flag, kind, default, help_text in flags:
        names = [flag] + _ALIASES.get(flag, [])
        if kind is bool:
            group.add_argument(*names, action="store_true", default=default, help=help_text)
        else:
            group.add_argument(*names, type=kind, default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """timm train.py's flags (the common subset) plus the relation-loss flags."""
    parser = argparse.ArgumentParser(description="Train a timm model with class-relation label smoothing.")
    parser.add_argument("data", nargs="?", metavar="DIR", help="dataset path (deprecated: use --data-dir)")
    for title, flags in (("Dataset", _DATA), ("Model", _MODEL), ("Optimizer and schedule", _OPT),
                         ("Augmentation and regularization", _AUG), ("EMA, AMP, misc", _MISC)):
        _add_flags(parser.add_argument_group(title), flags)
    lists = parser.add_argument_group("Multi-value flags")
    for flag, kind, nargs, default in _LISTS:
        lists.add_argument(flag, type=kind, nargs=nargs, default=default)
    rel = parser.add_argument_group("Class-relation label smoothing (hf_labelsmooth)")
    rel.add_argument("--loss-type", "--loss", default="ce", choices=list_classification_loss_types(),
                     help=f"timm's loss types, or a relation loss: {list_losses()} (default: ce)")
    _add_flags(rel, [
        ("--ls-alpha", float, None, "mass moved off the one-hot by a relation loss (default: the method's: "
                                    f"{describe_defaults()})"),
        ("--relation-update-every", int, None, "refresh the relations every N optimizer steps instead of every "
                                               "epoch (methods with an update period: ols; lspp/lls with top-N)"),
        ("--relation-lr", float, None, "learning rate of LS++/LLS matrices (default: --lr)"),
        ("--relation-weight-decay", float, -1.0, "weight decay of LS++/LLS matrices (default -1: the method's, "
                                                "docs/methods.md: the network's for LS++ as its authors, 0 for LLS)"),
        ("--relation-matrix", str, None, "fixed prior (relation_prior): a matrix folder or Hub repo, or a model "
                                         "folder / repo holding relation_matrix/"),
        ("--relation-top-n", int, None, "ols / lspp / lls: keep N related classes per row (sparse, for large K)"),
    ])
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and resolve the flags: data dir, smoothing default per loss, --relation-matrix consistency."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir or args.data
    if not args.data_dir:
        parser.error("Expected a dataset directory (--data-dir DIR) but got none.")
    if args.smoothing is None:
        args.smoothing = 0.0 if is_relation_loss_type(args.loss_type) else 0.1
    cls = get_loss_class(args.loss_type) if is_relation_loss_type(args.loss_type) else None
    if (cls is not None and cls.requires_matrix) != (args.relation_matrix is not None):
        parser.error(f"Expected --relation-matrix together with a --loss-type that takes a saved matrix "
                     f"({[n for n in list_losses() if get_loss_class(n).requires_matrix]}) but got --loss-type "
                     f"{args.loss_type} and --relation-matrix {args.relation_matrix}. Pass both or neither.")
    if args.relation_update_every is not None and (cls is None or not cls.has_update_period(args.relation_top_n)):
        parser.error(f"Expected a --loss-type that refreshes on a period (ols; lspp / lls with --relation-top-n) with "
                     f"--relation-update-every but got --loss-type {args.loss_type}.")
    if args.relation_top_n is not None and (cls is None or not cls.supports_top_n or args.relation_top_n < 1):
        parser.error(f"Expected --relation-top-n >= 1 with a --loss-type in {list_losses(supports_top_n=True)} but "
                     f"got {args.relation_top_n} with --loss-type {args.loss_type}.")
    if args.relation_weight_decay < 0:
        args.relation_weight_decay = None
    return args
