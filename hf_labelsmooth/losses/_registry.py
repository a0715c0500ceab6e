"""Name registry for losses, in the style of timm's model registry (`list_*` / `create_*`)."""
from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from .base import RelationLoss

_LOSSES: dict[str, type["RelationLoss"]] = {}
T = TypeVar("T", bound=type)


def register_loss(name: str) -> Callable[[T], T]:
    """Class decorator that registers a loss under `name` (adding a method = one file + this decorator).

    Args:
        name: Registry name, e.g. ``"ols"``. Must be unique.
    """

    def decorator(cls: T) -> T:
        if name in _LOSSES:
            raise ValueError(f"Expected a new loss name but got {name!r}, which is already registered.")
        cls.name = name  # type: ignore[attr-defined]
        _LOSSES[name] = cls  # type: ignore[assignment]
        return cls

    return decorator


def list_losses(pattern: str = "*") -> list[str]:
    """Return the registered loss names in registration order, optionally filtered by an fnmatch pattern."""
    return [name for name in _LOSSES if fnmatch.fnmatch(name, pattern)]


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
        alpha: Smoothing weight; ``None`` takes the method's default from SPEC.md.
        **kwargs: Method-specific options (e.g. ``update_every`` for ``"ols"``).

    Returns:
        The loss module. Losses with ``requires_optimizer = True`` own parameters: add them to the optimizer.
    """
    return get_loss_class(name)(num_classes=num_classes, alpha=alpha, **kwargs)
