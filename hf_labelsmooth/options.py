"""`RelationOptions`: the one, framework-free spec of a relation loss run (method, α, period, sparsity, prior, lr).

The Trainer arguments and the timm launcher only map their flag spellings onto it (docs/CONTRIBUTING.md has the
table); `check` refuses what a method cannot take, naming the integration's own flag, and `build` makes the loss.
`update_every` counts optimizer steps in every integration: the loss is built without a period of its own and the
training loop drives it (`UpdatePeriod`), so gradient accumulation does not change when the relations refresh.
Imports torch and the losses/relations layers only.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from .losses import create_loss, get_loss_class, is_loss, list_losses
from .losses.base import RelationLoss
from .optim import default_relation_lr, relation_param_groups

__all__ = ["RelationOptions", "UpdatePeriod"]


@dataclass
class RelationOptions:
    """What a run asks of its loss, in the package's one vocabulary.

    Args:
        method: A registered loss name (`hf_labelsmooth.list_losses()`).
        alpha: Mass moved off the one-hot; ``None`` takes the method's default.
        update_every: Refresh the relations every N optimizer steps instead of each epoch (methods with a period:
            ols; lspp / lls with `top_n`).
        top_n: Keep N related classes per row (sparse, for large K).
        prior: A saved relation artifact (folder or Hub repo id) used as the fixed prior of ``relation_prior``.
        relation_lr: Learning rate of a learnable matrix; ``None``: `hf_labelsmooth.optim.default_relation_lr`.
        relation_weight_decay: Weight decay of a learnable matrix; ``None``: the method's default.
    """

    method: str = "ce"
    alpha: float | None = None
    update_every: int | None = None
    top_n: int | None = None
    prior: str | None = None
    relation_lr: float | None = None
    relation_weight_decay: float | None = None

    def check(self, flags: Mapping[str, str] | None = None) -> None:
        """Raise ValueError, before any work, for options the method cannot take.

        Args:
            flags: How the caller spells each field (``{"method": "--loss-type", ...}``), for the messages; a field
                missing from it is spelled ```field```.
        """
        flag = _Spelling(flags or {})
        if self.prior is not None and not self.prior.strip():
            raise ValueError(f"Expected {flag('prior')} to be a folder saved by save_pretrained or a Hub repo id but "
                             f"got an empty string. Pass a path, or drop {flag('prior')}.")
        if not is_loss(self.method):
            raise ValueError(f"Expected {flag('method')} in {list_losses()} but got {self.method!r}.")
        self._check_prior(flag)
        self._check_alpha(flag)
        self._check_period_and_rows(flag)
        self._check_optimizer_fields(flag)

    def _check_prior(self, flag: "_Spelling") -> None:
        if get_loss_class(self.method).spec.requires_matrix != (self.prior is not None):
            takes = [n for n in list_losses() if get_loss_class(n).spec.requires_matrix]
            raise ValueError(f"Expected {flag('prior')} together with a {flag('method')} that takes a saved matrix "
                             f"({takes}) but got {flag('method')} {self.method} and {flag('prior')} {self.prior}. "
                             "Pass both or neither.")

    def _check_alpha(self, flag: "_Spelling") -> None:
        alpha = self.alpha
        if alpha is not None and (isinstance(alpha, (bool, str)) or not isinstance(alpha, (int, float))):
            raise ValueError(f"Expected {flag('alpha')} to be a number in [0, 1] but got {alpha!r} "
                             f"({type(alpha).__name__}). Pass a float, e.g. 0.1, not the string '0.1'.")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Expected {flag('alpha')} in [0, 1] but got {alpha}.")
        if alpha and get_loss_class(self.method).spec.default_alpha == 0.0:
            raise ValueError(f"Expected no {flag('alpha')} with method {self.method!r} but got {alpha}. Use "
                             f"{flag('method')} ls to smooth.")

    def _check_period_and_rows(self, flag: "_Spelling") -> None:
        cls, every, top_n = get_loss_class(self.method), self.update_every, self.top_n
        if every is not None and (not cls.spec.has_update_period(top_n) or every < 1):
            raise ValueError(f"Expected {flag('update_every')} >= 1 with a method that refreshes on a period (ols; "
                             f"lspp / lls with {flag('top_n')}) but got {every} with method {self.method!r} and "
                             f"{flag('top_n')} {top_n}. Drop it or change the method.")
        if top_n is not None and (not cls.spec.supports_top_n or top_n < 1):
            raise ValueError(f"Expected {flag('top_n')} >= 1 with a method in {list_losses(supports_top_n=True)} "
                             f"but got {top_n} with method {self.method!r}. Drop it or change the method.")

    def _check_optimizer_fields(self, flag: "_Spelling") -> None:
        for name in ("relation_lr", "relation_weight_decay"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Expected {flag(name)} to be a finite number >= 0 but got {value}.")
            if value is not None and not get_loss_class(self.method).spec.requires_optimizer:
                learnable = [n for n in list_losses() if get_loss_class(n).spec.requires_optimizer]
                warnings.warn(f"{flag(name)}={value} has no effect with method {self.method!r}, which learns no "
                              f"parameters; it applies to {learnable}.", UserWarning, stacklevel=4)

    def build(self, num_classes: int, label_names: Sequence[str], **kwargs: Any) -> RelationLoss:
        """The loss, without a period of its own (the training loop drives `update_every`, see `UpdatePeriod`).

        Args:
            num_classes: The model's number of outputs K.
            label_names: Class names in output order; a `prior` is checked against them.
            **kwargs: Further constructor options (``reduction="none"``).

        Raises:
            ValueError: When the `prior`'s label names differ from `label_names` (naming the fix).
        """
        return self.build_with_prior(num_classes, label_names, **kwargs)[0]

    def build_with_prior(self, num_classes: int, label_names: Sequence[str], **kwargs: Any
                         ) -> tuple[RelationLoss, dict[str, Any] | None]:
        """`build`, and the `relations.provenance.prior_record` of the `prior` (None without one): what the
        student's config and card record, and the log line that confirms which matrix was loaded."""
        prior = None
        if self.top_n is not None:
            kwargs["top_n"] = self.top_n
        if self.prior is not None:
            from .relations.provenance import load_prior

            matrix, prior = load_prior(self.prior, label_names)  # checks the label names, logs the matrix
            kwargs.update(matrix=matrix, label_names=list(label_names))
        return create_loss(self.method, num_classes=num_classes, alpha=self.alpha, **kwargs), prior

    def param_groups(self, loss: RelationLoss, optimizer: torch.optim.Optimizer | type, lr: float,
                     network_weight_decay: float, **default_lr: Any) -> list[dict[str, Any]]:
        """The matrix's param group (none for losses without parameters): `relation_lr`, else
        `hf_labelsmooth.optim.default_relation_lr` of the network's optimizer (class), `lr` and `default_lr` (its
        further keyword arguments); `relation_weight_decay`, else the method's."""
        relation_lr = self.relation_lr if self.relation_lr is not None else \
            default_relation_lr(optimizer, lr, **default_lr)
        return relation_param_groups(loss, lr=relation_lr, weight_decay=self.relation_weight_decay,
                                     network_weight_decay=network_weight_decay)

    def update_period(self, loss: RelationLoss) -> "UpdatePeriod":
        """The driver of `loss`'s refreshes for a training loop (see `UpdatePeriod`)."""
        return UpdatePeriod(loss, self.update_every)


class UpdatePeriod:
    """When a loss built by `RelationOptions.build` refreshes its relations (OLS swaps, sparse slots) in training.

    Every `every` optimizer steps when set (the integration calls `after_step` with its global optimizer step),
    otherwise at each epoch end (`at_epoch_end`). The loss's own ``update_every`` / ``refresh_every`` count forward
    batches (the pure-PyTorch meaning); integrations leave them unset and call this instead.

    Args:
        loss: The loss.
        every: Period in optimizer steps; ``None``: each epoch end.
    """

    def __init__(self, loss: RelationLoss, every: int | None) -> None:
        self.loss, self.every = loss, every

    def after_step(self, step: int) -> bool:
        """After optimizer step `step` (1-based, counted over the whole run): refresh when it ends a period."""
        if self.every is None or step % self.every:
            return False
        self.loss.end_epoch()
        return True

    def at_epoch_end(self) -> bool:
        """At an epoch end: refresh unless the period is counted in steps."""
        if self.every is not None:
            return False
        self.loss.end_epoch()
        return True


class _Spelling:
    """A field's name as the caller's flags spell it."""

    def __init__(self, flags: Mapping[str, str]) -> None:
        self.flags = flags

    def __call__(self, field: str) -> str:
        return self.flags.get(field, f"`{field}`")
