"""Name registry for losses, in the style of timm's model registry (`list_*` / `create_*`).

Every fact about a method is declared once, on its class (see `RelationLoss`): its default alpha, whether it
learns a matrix, supports sparse ``top_n`` rows, what its stored logits mean, its batch-period option, and its
`MethodCard` (title, description, citation). The Trainer arguments, the timm flags, the artifact writer and the
model card read them from here; nothing re-lists method names.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from .base import RelationLoss

_LOSSES: dict[str, type["RelationLoss"]] = {}
T = TypeVar("T", bound=type)


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


def register_loss(name: str) -> Callable[[T], T]:
    """Class decorator that registers a loss under `name` (adding a method = one file + this decorator).

    Re-registering the same class (e.g. after ``importlib.reload``) replaces the entry.

    Args:
        name: Registry name, e.g. ``"ols"``. Must be unique.
    """

    def decorator(cls: T) -> T:
        old = _LOSSES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"Expected a new loss name but got {name!r}, which is already registered by "
                             f"{old.__module__}.{old.__qualname__}.")
        cls.name = name  # type: ignore[attr-defined]
        _LOSSES[name] = cls
        return cls

    return decorator


def list_losses(pattern: str = "*", *, learns_relations: bool | None = None,
                supports_top_n: bool | None = None) -> list[str]:
    """Registered loss names in registration order, filtered by an fnmatch pattern and method facts.

    Args:
        pattern: fnmatch pattern on the name.
        learns_relations: Keep only the methods that do (True) or do not (False) learn a relation matrix.
        supports_top_n: Keep only the methods that do (True) or do not (False) support sparse ``top_n`` rows.
    """
    return [name for name, cls in _LOSSES.items() if fnmatch.fnmatch(name, pattern)
            and learns_relations in (None, cls.learns_relations) and supports_top_n in (None, cls.supports_top_n)]


def is_loss(name: str) -> bool:
    """Return True when `name` is a registered loss."""
    return name in _LOSSES


def get_loss_class(name: str) -> type["RelationLoss"]:
    """Return the class registered under `name`.

    Raises:
        ValueError: If the name is unknown; the message lists the registered names.
    """
    if name not in _LOSSES:
        raise ValueError(f"Expected a loss name in {list_losses()} but got {name!r}.")
    return _LOSSES[name]


def create_loss(name: str, num_classes: int, alpha: float | None = None, **kwargs: Any) -> "RelationLoss":
    """Build a registered loss, like ``timm.create_model``.

    Args:
        name: A name from `list_losses()`.
        num_classes: Number of classes K (the model's output size).
        alpha: Mass moved off the one-hot (the same meaning for every method); ``None`` takes the method's default.
        **kwargs: Method-specific options (e.g. ``update_every`` for ``"ols"``).

    Returns:
        The loss module. Losses with ``requires_optimizer = True`` own parameters: add them to the optimizer.
    """
    return get_loss_class(name)(num_classes=num_classes, alpha=alpha, **kwargs)


def describe_defaults(names: list[str] | None = None) -> str:
    """``"ls 0.1, ols 0.5, ..."``: each method's default alpha, for help texts."""
    return ", ".join(f"{n} {get_loss_class(n).default_alpha:g}" for n in (names or list_losses())
                     if get_loss_class(n).default_alpha)
