"""`MethodSpec`: every fact about a method in one frozen value, given to `@register_loss`, read by every integration.

The facts are checked against each other here (no class needed) and against the class by `registry.register_loss`
(its constructor's options, a probe instance's parameters and storage), so a contradiction fails at import with the
fix. `MethodCard` is the model-card text of a method.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

LOGITS_KINDS = ("softmax", "masked_softmax")  # how a stored `logits` parameter maps to R (the artifact reads both)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
T = TypeVar("T")


@dataclass(frozen=True)
class MethodCard:
    """Model-card text of a method: shown in the cards of matrices it learned.

    Args:
        title: Human-readable name, e.g. ``"Online Label Smoothing (OLS)"``.
        description: What the matrix is and how it is learned (Markdown, one paragraph).
        bibtex: Citation of the paper, or None.
        alpha_note: How `alpha` maps to the paper's notation, when they differ.
    """

    title: str
    description: str
    bibtex: str | None = None
    alpha_note: str | None = None


@dataclass(frozen=True)
class MethodSpec:
    """The facts of a method, declared once (``@register_loss(MethodSpec(name="ols", ...))``) and read through
    ``get_loss_class(name).spec`` / ``loss.spec`` by the Trainer, the timm launcher, the artifact writer and the card.

    Args:
        name: Registry name, e.g. ``"ols"`` (letters, digits, ``_.-``).
        default_alpha: `alpha` when none is given, in [0, 1] (the mass moved off the one-hot).
        learns_relations: Training learns a matrix worth saving and sharing (the integrations save it).
        requires_optimizer: The loss owns trainable parameters, which must go in an optimizer.
        relation_weight_decay: Weight decay of those parameters; None: the network's.
        supports_top_n: The constructor takes ``top_n=N`` and then holds top-N rows (its `rows` storage).
        logits_kind: How the loss's K×K ``logits`` parameter maps to R, saved with the matrix: ``"softmax"`` or
            ``"masked_softmax"`` (diagonal excluded); None when the loss has no such parameter.
        period_option: Constructor option that sets an update period in training batches (e.g. ``"update_every"``).
        period_needs_top_n: The period refreshes top-N rows only (LS++/LLS slots): dense rows have none.
        requires_matrix: Built from a saved matrix (``matrix=``, ``--relation_matrix``).
        soft_targets_only: Meant for soft targets (e.g. SLR's refined labels): with class ids it equals ``ce``, so
            launchers that train on class labels refuse it.
        card: Model-card text of the matrices this method learns.
    """

    name: str
    default_alpha: float = 0.1
    learns_relations: bool = False
    requires_optimizer: bool = False
    relation_weight_decay: float | None = None
    supports_top_n: bool = False
    logits_kind: str | None = None
    period_option: str | None = None
    period_needs_top_n: bool = False
    requires_matrix: bool = False
    soft_targets_only: bool = False
    card: MethodCard | None = None

    def __post_init__(self) -> None:
        for problem in self.contradictions():
            raise ValueError(f"Expected consistent method facts for {self.name!r} but got {problem}")

    def has_update_period(self, top_n: int | None = None) -> bool:
        """Whether the loss refreshes its relations on a period (`period_option`) when built with this `top_n`."""
        return self.period_option is not None and (top_n is not None or not self.period_needs_top_n)

    def contradictions(self) -> list[str]:
        """Facts that cannot hold together, each with its fix (the class-free checks; `register_loss` adds the rest)."""
        alpha, decay = self.default_alpha, self.relation_weight_decay
        checks = [
            (bool(_NAME.fullmatch(self.name)) or self.name == "", f"name {self.name!r}: use letters, digits, '_.-'."),
            (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0, f"default_alpha={alpha!r}: give one in [0, 1]."),
            (decay is None or self.requires_optimizer, f"relation_weight_decay={decay} without requires_optimizer: "
             "there is no parameter to decay; drop it or set requires_optimizer=True."),
            (decay is None or decay >= 0, f"relation_weight_decay={decay}: give one >= 0, or None."),
            (self.logits_kind in (None, *LOGITS_KINDS), f"logits_kind={self.logits_kind!r}: use one of "
             f"{LOGITS_KINDS} or None."),
            (self.logits_kind is None or (self.requires_optimizer and self.learns_relations),
             f"logits_kind={self.logits_kind!r} without learns_relations and requires_optimizer: stored logits are "
             "a learned parameter; set both or drop logits_kind."),
            (self.period_option is None or self.learns_relations, f"period_option={self.period_option!r} with "
             "learns_relations=False: a period refreshes learned relations; set learns_relations=True or drop it."),
            (not self.period_needs_top_n or (self.period_option is not None and self.supports_top_n),
             "period_needs_top_n=True without period_option and supports_top_n: set both or drop it."),
            (self.card is None or isinstance(self.card, MethodCard), f"card={self.card!r}: give a MethodCard."),
        ]
        return [problem for ok, problem in checks if not ok]


UNREGISTERED = MethodSpec(name="")  # the spec of a RelationLoss subclass that no `register_loss` has named


class SpecField(Generic[T]):
    """Read-only alias of a `MethodSpec` field on a loss class and its instances (``loss.learns_relations`` is
    ``loss.spec.learns_relations``), for code written against release 0.1.0. The package reads ``spec``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    def __get__(self, obj: Any, objtype: Any = None) -> T:
        return getattr((objtype or type(obj)).spec, self.field)
