"""`LabelSmoothingTrainingArguments`: `TrainingArguments` plus the class-relation label smoothing fields, mapped onto
`hf_labelsmooth.options.RelationOptions` (which checks them and builds the loss).

Which options a method takes (a period, sparse rows, a saved matrix, its default alpha) is read from the loss
registry: a newly registered loss is reachable here with no edit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from transformers import TrainingArguments

from ...losses.base import RelationLoss
from ...losses.registry import describe_defaults, get_loss_class, is_loss, list_losses
from ...optim import describe_default_relation_lr
from ...options import RelationOptions
from .launch import check_launch, prepare_launch

# `RelationOptions` field -> the argument that sets it (docs/CONTRIBUTING.md has the table for every integration)
TRAINER_FIELDS = {"method": "label_smoothing_method", "alpha": "label_smoothing_alpha",
                  "update_every": "relation_update_every", "top_n": "relation_top_n", "prior": "relation_matrix",
                  "relation_lr": "relation_lr", "relation_weight_decay": "relation_weight_decay"}


class _RegisteredLosses:
    """argparse `choices` that follow the registry (a loss registered after import is accepted and listed)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and is_loss(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list_losses())


def _matrix_methods() -> list[str]:
    """The registered methods built from a saved matrix (relation_prior)."""
    return [n for n in list_losses() if get_loss_class(n).spec.requires_matrix]


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
        relation_heatmap_every: Log the learned matrix's heatmap every N epochs to the `report_to` loggers that
            take images (TensorBoard, W&B); 0 never. A logging setting, not a `RelationOptions` field.
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
                                        f"{describe_default_relation_lr('learning_rate')}."})
    relation_weight_decay: float | None = field(
        default=None, metadata={"help": "Weight decay of the learnable matrix; default per method (lspp: "
                                        "weight_decay, lls: 0)."})
    relation_matrix: str | None = field(
        default=None, metadata={"help": "A saved relation matrix to use as a fixed prior (relation_prior): its folder "
                                        "or Hub repo, or a model's (folder or repo holding relation_matrix/)."})
    relation_top_n: int | None = field(
        default=None, metadata={"help": f"Keep N related classes per row (sparse, for large K): "
                                        f"{list_losses(supports_top_n=True)}."})
    relation_heatmap_every: int = field(
        default=1, metadata={"help": "Log the learned matrix's heatmap every N epochs to the report_to loggers that "
                                     "take images (tensorboard, wandb); 0 never."})

    def __post_init__(self) -> None:
        prepare_launch(self)  # CPU without an accelerator; launches that cannot be real are refused (`launch`)
        super().__post_init__()
        check_launch(self)
        if self.relation_matrix is not None and self.relation_matrix.strip() and self.label_smoothing_method == "ce":
            self.label_smoothing_method = _matrix_methods()[0]  # `--relation_matrix` alone selects the prior
        if self.label_smoothing_factor:
            raise ValueError(
                f"Expected `label_smoothing_factor` = 0 with LabelSmoothingTrainingArguments but got "
                f"{self.label_smoothing_factor} (method {self.label_smoothing_method!r}): both would smooth the "
                f"labels. Use `--label_smoothing_method ls --label_smoothing_alpha {self.label_smoothing_factor}` for "
                "uniform smoothing, or drop `--label_smoothing_factor`.")
        self.relation_options().check({spec: f"`{name}`" for spec, name in TRAINER_FIELDS.items()})
        if self.relation_heatmap_every < 0:
            raise ValueError(f"Expected `relation_heatmap_every` >= 0 (epochs; 0 never logs) but got "
                             f"{self.relation_heatmap_every}.")

    def relation_options(self) -> RelationOptions:
        """These arguments in the package's vocabulary (`hf_labelsmooth.options.RelationOptions`)."""
        return RelationOptions(**{spec: getattr(self, name) for spec, name in TRAINER_FIELDS.items()})


def config_label_names(config: Any) -> list[str]:
    """Class names in output order from a model config's `id2label` (keys may be int or str)."""
    id2label = getattr(config, "id2label", None) or {}
    k = int(config.num_labels)
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(k)]


def build_relation_loss(args: LabelSmoothingTrainingArguments, num_classes: int,
                        label_names: Sequence[str]) -> RelationLoss:
    """The loss named by `args.label_smoothing_method`, per-sample (``reduction="none"``): `RelationOptions.build`.

    Raises:
        ValueError: When the `relation_matrix` prior's label names differ from the model's (`config.id2label`).
    """
    return args.relation_options().build(num_classes, label_names, reduction="none")
