"""`LabelSmoothingTrainingArguments`: `TrainingArguments` plus the class-relation label smoothing fields.

Which options a method takes (a period, sparse rows, a saved matrix, its default alpha) is read from the loss
registry: a newly registered loss is reachable here with no edit.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterator

from transformers import TrainingArguments

from ...losses.registry import describe_defaults, get_loss_class, is_loss, list_losses


class _RegisteredLosses:
    """argparse `choices` that follow the registry (a loss registered after import is accepted and listed)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and is_loss(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list_losses())


def _matrix_methods() -> list[str]:
    """The registered methods built from a saved matrix (relation_prior)."""
    return [n for n in list_losses() if get_loss_class(n).requires_matrix]


@dataclass
class LabelSmoothingTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the loss fields of hf_labelsmooth (all parsed by `HfArgumentParser`).

    Args:
        label_smoothing_method: A registered loss name (`hf_labelsmooth.list_losses()`): ``"ce"`` (default),
            ``"ls"``, ``"ols"``, ``"lspp"``, ``"lls"``, or ``"relation_prior"`` (a fixed matrix, `relation_matrix`).
        label_smoothing_alpha: Mass moved off the one-hot (the same meaning for every method); ``None`` takes the
            method's default.
        relation_update_every: Refresh the relations every N optimizer steps instead of every epoch (methods
            with an update period: ols; lspp / lls with `relation_top_n`).
        relation_lr: Learning rate of learnable matrices (lspp, lls). ``None`` picks one from the optimizer
            (`hf_labelsmooth.optim.default_relation_lr`): ``max(learning_rate, 3 / total optimizer steps)`` for
            Adam-like optimizers (AdamW, the Trainer's default): about 3 units of logit travel over the run, enough to
            learn relations in a short fine-tune, not enough to collapse rows from scratch; ``10 × learning_rate``
            for SGD. See docs/methods.md ("Learning rate of the matrix").
        relation_weight_decay: Weight decay of learnable matrices; ``None`` = the method's default (lspp: the
            model's `weight_decay`, lls: 0).
        relation_matrix: A saved relation artifact used as a fixed prior: its folder or Hub repo id, or a model
            folder / repo trained with a relation method (its ``relation_matrix/`` subfolder is read).
        relation_top_n: Keep N related classes per row (sparse, for large K; methods that support it).
    """

    label_smoothing_method: str = field(
        default="ce", metadata={"choices": _RegisteredLosses(),
                                "help": "A registered loss (relation_prior needs --relation_matrix)."})
    label_smoothing_alpha: float | None = field(
        default=None, metadata={"help": "Mass moved off the one-hot (same meaning for every method); default per "
                                        f"method ({describe_defaults()})."})
    relation_update_every: int | None = field(
        default=None, metadata={"help": "Refresh the relations every N optimizer steps instead of each epoch "
                                        "(ols; lspp/lls with --relation_top_n)."})
    relation_lr: float | None = field(
        default=None, metadata={"help": "Learning rate of the learnable matrix (lspp, lls). Default: "
                                        "max(learning_rate, 0.05) with Adam-like optimizers (a fine-tuning "
                                        "learning_rate leaves the matrix uniform), 10 x learning_rate with SGD."})
    relation_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of the learnable matrix; default per method (lspp: "
                                        "weight_decay, lls: 0)."})
    relation_matrix: str | None = field(
        default=None, metadata={"help": "A saved relation matrix to use as a fixed prior (relation_prior): its folder "
                                        "or Hub repo, or a model's (folder or repo holding relation_matrix/)."})
    relation_top_n: int | None = field(
        default=None, metadata={"help": f"Keep N related classes per row (sparse, for large K): "
                                        f"{list_losses(supports_top_n=True)}."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relation_matrix is not None and not self.relation_matrix.strip():
            raise ValueError("Expected `relation_matrix` to be a folder saved by save_pretrained or a Hub repo id but "
                             "got an empty string. Pass a path, or drop `--relation_matrix`.")
        if self.relation_matrix is not None and self.label_smoothing_method == "ce":
            self.label_smoothing_method = _matrix_methods()[0]  # `--relation_matrix` alone selects the prior
        self._check_method()
        self._check_options()

    def _check_method(self) -> None:
        method = self.label_smoothing_method
        if not is_loss(method):
            raise ValueError(f"Expected `label_smoothing_method` in {list_losses()} but got {method!r}.")
        if self.label_smoothing_factor:
            raise ValueError(
                f"Expected `label_smoothing_factor` = 0 with LabelSmoothingTrainingArguments but got "
                f"{self.label_smoothing_factor} (method {method!r}): both would smooth the labels. Use "
                f"`--label_smoothing_method ls --label_smoothing_alpha {self.label_smoothing_factor}` for uniform "
                "smoothing, or drop `--label_smoothing_factor`.")
        if get_loss_class(method).requires_matrix != (self.relation_matrix is not None):
            raise ValueError(
                f"Expected `relation_matrix` to be set exactly when the method takes a saved matrix "
                f"({_matrix_methods()}) but got method {method!r} and "
                f"relation_matrix={self.relation_matrix!r}. Pass `--relation_matrix PATH` alone.")
        alpha = self.label_smoothing_alpha
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Expected `label_smoothing_alpha` in [0, 1] but got {alpha}.")
        if alpha and get_loss_class(method).default_alpha == 0.0:
            raise ValueError(f"Expected no `label_smoothing_alpha` with method {method!r} but got {alpha}. Use "
                             "`--label_smoothing_method ls` to smooth.")

    def _check_options(self) -> None:
        method, cls = self.label_smoothing_method, get_loss_class(self.label_smoothing_method)
        every = self.relation_update_every
        if every is not None and (not cls.has_update_period(self.relation_top_n) or every < 1):
            raise ValueError(f"Expected `relation_update_every` >= 1 with a method that refreshes on a period (ols; "
                             f"lspp / lls with relation_top_n) but got {every} with method {method!r} and "
                             f"relation_top_n={self.relation_top_n}. Drop it or change the method.")
        if self.relation_top_n is not None and (not cls.supports_top_n or self.relation_top_n < 1):
            raise ValueError(f"Expected `relation_top_n` >= 1 with a method in {list_losses(supports_top_n=True)} "
                             f"but got {self.relation_top_n} with method {method!r}. Drop it or change the method.")
        for name in ("relation_lr", "relation_weight_decay"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Expected `{name}` to be a finite number >= 0 but got {value}.")
            if value is not None and not cls.requires_optimizer:
                learnable = [n for n in list_losses() if get_loss_class(n).requires_optimizer]
                warnings.warn(f"`{name}`={value} has no effect with method {method!r}, which learns no parameters; "
                              f"it applies to {learnable}.", UserWarning, stacklevel=3)
