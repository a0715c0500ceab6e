"""`LabelSmoothingTrainingArguments`: `TrainingArguments` plus the class-relation label smoothing fields."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

METHODS = ("ce", "ls", "ols", "lspp", "lls", "relation_prior")


@dataclass
class LabelSmoothingTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the loss fields of hf_labelsmooth (all parsed by `HfArgumentParser`).

    Args:
        label_smoothing_method: ``"ce"`` (default), ``"ls"``, ``"ols"``, ``"lspp"``, ``"lls"``, or
            ``"relation_prior"`` (a fixed matrix given by `relation_matrix`).
        label_smoothing_alpha: Smoothing weight; ``None`` takes the method's default (SPEC.md: ls 0.1, ols 0.5,
            lspp 0.1, lls 0.1).
        ols_update_every: OLS only: refresh the matrix every N optimizer steps instead of every epoch.
        relation_lr: Learning rate of learnable matrices (lspp, lls); ``None`` = `learning_rate`.
        relation_weight_decay: Weight decay of learnable matrices; ``None`` = the method's default (lspp: the
            model's `weight_decay`, lls: 0).
        relation_matrix: Path or Hub repo id of a saved `ClassRelationMatrix` used as a fixed prior.
        relation_top_n: ols / lspp / lls: keep N related classes per row (sparse, for large K; see README).
    """

    label_smoothing_method: Literal["ce", "ls", "ols", "lspp", "lls", "relation_prior"] = field(
        default="ce", metadata={"help": "Loss: ce, ls, ols, lspp, lls or relation_prior (needs --relation_matrix)."})
    label_smoothing_alpha: float | None = field(
        default=None, metadata={"help": "Smoothing weight alpha; default per method (ls/lspp/lls 0.1, ols 0.5)."})
    ols_update_every: int | None = field(
        default=None, metadata={"help": "OLS: refresh the matrix every N optimizer steps instead of each epoch."})
    relation_lr: float | None = field(
        default=None, metadata={"help": "Learning rate of the learnable matrix (lspp, lls); default learning_rate."})
    relation_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of the learnable matrix; default per method (lspp: "
                                        "weight_decay, lls: 0)."})
    relation_matrix: str | None = field(
        default=None, metadata={"help": "Path or Hub repo id of a saved relation matrix to use as a fixed prior."})
    relation_top_n: int | None = field(
        default=None, metadata={"help": "ols/lspp/lls: keep N related classes per row (sparse, for large K)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relation_matrix is not None and self.label_smoothing_method == "ce":
            self.label_smoothing_method = "relation_prior"
        self._check_label_smoothing_fields()

    def _check_label_smoothing_fields(self) -> None:
        method = self.label_smoothing_method
        if method not in METHODS:
            raise ValueError(f"Expected `label_smoothing_method` in {METHODS} but got {method!r}.")
        if self.label_smoothing_factor:
            raise ValueError(
                f"Expected `label_smoothing_factor` = 0 with LabelSmoothingTrainingArguments but got "
                f"{self.label_smoothing_factor} (method {method!r}): both would smooth the labels. Use "
                f"`--label_smoothing_method ls --label_smoothing_alpha {self.label_smoothing_factor}` for uniform "
                "smoothing, or drop `--label_smoothing_factor`.")
        if (method == "relation_prior") != (self.relation_matrix is not None):
            raise ValueError(
                f"Expected `relation_matrix` to be set exactly when the method is 'relation_prior' but got method "
                f"{method!r} and relation_matrix={self.relation_matrix!r}. Pass `--relation_matrix PATH` alone.")
        if self.ols_update_every is not None and (method != "ols" or self.ols_update_every < 1):
            raise ValueError(f"Expected `ols_update_every` >= 1 with method 'ols' but got {self.ols_update_every} "
                             f"with method {method!r}. Drop it or use `--label_smoothing_method ols`.")
        if self.label_smoothing_alpha is not None and not 0.0 <= self.label_smoothing_alpha <= 1.0:
            raise ValueError(f"Expected `label_smoothing_alpha` in [0, 1] but got {self.label_smoothing_alpha}.")
        if method == "ce" and self.label_smoothing_alpha:
            raise ValueError(f"Expected no `label_smoothing_alpha` with method 'ce' but got "
                             f"{self.label_smoothing_alpha}. Use `--label_smoothing_method ls` to smooth.")
        if self.relation_top_n is not None and (method not in ("ols", "lspp", "lls") or self.relation_top_n < 1):
            raise ValueError(f"Expected `relation_top_n` >= 1 with method ols, lspp or lls but got "
                             f"{self.relation_top_n} with method {method!r}. Drop it or pick one of those methods.")
        if self.relation_lr is not None and self.relation_lr < 0:
            raise ValueError(f"Expected `relation_lr` >= 0 but got {self.relation_lr}.")
        if self.relation_weight_decay is not None and self.relation_weight_decay < 0:
            raise ValueError(f"Expected `relation_weight_decay` >= 0 but got {self.relation_weight_decay}.")
