"""Name registry for losses, in the style of timm's model registry (`list_*` / `create_*`).

Every fact about a method is declared once, in the `MethodSpec` given to `register_loss`: its default alpha, whether
it learns a matrix, supports sparse ``top_n`` rows, what its stored logits mean, its batch-period option, and its
`MethodCard` (title, description, citation). `register_loss` checks the facts against the class (its constructor's
options, and a probe instance with K=4: its parameters and storage) and refuses a contradiction at import. The
Trainer arguments, the timm flags, the artifact writer and the model card read ``get_loss_class(name).spec``;
nothing re-lists method names.
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor, nn

from .base import RelationLoss
from .spec import MethodCard, MethodSpec

__all__ = ["MethodCard", "MethodSpec", "create_loss", "describe_defaults", "get_loss_class", "is_loss", "list_losses",
           "register_loss"]

_LOSSES: dict[str, type[RelationLoss]] = {}
L = TypeVar("L", bound=type[RelationLoss])
PROBE_CLASSES = 4  # K of the instances `register_loss` builds to check the facts that need one


def register_loss(spec: MethodSpec) -> Callable[[L], L]:
    """Class decorator that registers a loss under ``spec.name`` with its facts (adding a method = one file).

    Re-registering the same class (e.g. after ``importlib.reload``) replaces the entry.

    Args:
        spec: The method's facts; ``spec.name`` must be unique.

    Raises:
        ValueError: If the name is taken by another class, or the facts contradict the class (the message names
            the fix).
    """
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"Expected a MethodSpec but got {spec!r}. Declare the facts once: "
                        f"@register_loss(MethodSpec(name={spec!r}, default_alpha=..., ...)).")

    def decorator(cls: L) -> L:
        old = _LOSSES.get(spec.name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"Expected a new loss name but got {spec.name!r}, which is already registered by "
                             f"{old.__module__}.{old.__qualname__}.")
        _check_class(cls, spec)
        if "spec" in vars(cls) and cls.spec.name != spec.name:
            raise ValueError(f"Expected one name per class but got {spec.name!r} for {cls.__qualname__}, already "
                             f"registered as {cls.spec.name!r}; register a subclass under the second name.")
        own = vars(cls).get("spec")
        cls.spec = spec
        try:
            _check_instances(cls, spec)
        except ValueError:
            if own is None:
                del cls.spec  # the class reads its base's spec again
            else:
                cls.spec = own
            raise
        _LOSSES[spec.name] = cls
        return cls

    return decorator


def _check_class(cls: type, spec: MethodSpec) -> None:
    """Facts checked on the class alone: a RelationLoss, no fact left as a class attribute, the options it names."""
    where = f"{cls.__qualname__} ({spec.name!r})"
    if not (isinstance(cls, type) and issubclass(cls, RelationLoss)):
        raise ValueError(f"Expected a RelationLoss subclass for {spec.name!r} but got {cls!r}.")
    for klass in cls.__mro__[: cls.__mro__.index(RelationLoss)]:
        shadowed = sorted(set(vars(klass)) & set(MethodSpec.__dataclass_fields__))
        if shadowed:
            raise ValueError(f"Expected the method facts in MethodSpec only but got class attributes {shadowed} on "
                             f"{klass.__qualname__}; move them into register_loss(MethodSpec(..., {shadowed[0]}=...)).")
    options = inspect.signature(cls).parameters
    needed = [("top_n", spec.supports_top_n, "supports_top_n=True"),
              (spec.period_option, spec.period_option is not None, f"period_option={spec.period_option!r}"),
              ("matrix", spec.requires_matrix, "requires_matrix=True")]
    for option, declared, fact in needed:
        if declared and option not in options:
            raise ValueError(f"Expected {where} to take the option `{option}` for {fact} but its constructor takes "
                             f"{list(options)}; add the option or drop the fact.")


def _probe(cls: type[RelationLoss], spec: MethodSpec, **options: Any) -> RelationLoss:
    k = PROBE_CLASSES
    matrix: dict[str, Any] = {"matrix": torch.full((k, k), 1.0 / k)} if spec.requires_matrix else {}
    try:
        return cls(num_classes=k, **{**matrix, **options})
    except Exception as error:  # any failure of the probe is reported with its fix
        raise ValueError(f"Expected {cls.__qualname__}(num_classes={k}, {', '.join([*matrix, *options])}) to build "
                         f"(register_loss checks the facts of {spec.name!r} on it) but got {error!r}; give every "
                         "other option a default.") from error


def _check_instances(cls: type[RelationLoss], spec: MethodSpec) -> None:
    """Facts that need an instance: trainable parameters, the stored logits, the top-N storage."""
    where = f"{cls.__qualname__} ({spec.name!r})"
    probes = [("", _probe(cls, spec))]
    if spec.supports_top_n:
        probes.append((" with top_n=1", _probe(cls, spec, top_n=1)))
    for built, loss in probes:
        trainable = [name for name, p in loss.named_parameters() if p.requires_grad]
        if bool(trainable) != spec.requires_optimizer:
            raise ValueError(f"Expected requires_optimizer={bool(trainable)} for {where}, which{built} owns trainable "
                             f"parameters {trainable}, but got requires_optimizer={spec.requires_optimizer}; "
                             "set it to match (the integrations optimise exactly these losses' parameters).")
    if spec.supports_top_n and getattr(probes[1][1], "top_n", None) != 1:
        raise ValueError(f"Expected {where} built with top_n=1 to hold top-N rows (`top_n` == 1, e.g. a TopNLogits "
                         f"storage) but got top_n={getattr(probes[1][1], 'top_n', None)!r}; give it sparse storage "
                         "or set supports_top_n=False.")
    logits = getattr(probes[0][1], "logits", None)
    k = PROBE_CLASSES
    if spec.logits_kind is not None and not (isinstance(logits, nn.Parameter) and logits.shape == (k, k)):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else None
        raise ValueError(f"Expected {where} with logits_kind={spec.logits_kind!r} to hold a K×K parameter `logits` "
                         f"(saved with its matrix) but got {shape}; name it `logits` or drop logits_kind.")


def list_losses(pattern: str = "*", *, learns_relations: bool | None = None,
                supports_top_n: bool | None = None) -> list[str]:
    """Registered loss names in registration order, filtered by an fnmatch pattern and method facts.

    Args:
        pattern: fnmatch pattern on the name.
        learns_relations: Keep only the methods that do (True) or do not (False) learn a relation matrix.
        supports_top_n: Keep only the methods that do (True) or do not (False) support sparse ``top_n`` rows.
    """
    return [name for name, cls in _LOSSES.items() if fnmatch.fnmatch(name, pattern)
            and learns_relations in (None, cls.spec.learns_relations)
            and supports_top_n in (None, cls.spec.supports_top_n)]


def is_loss(name: str) -> bool:
    """Return True when `name` is a registered loss."""
    return name in _LOSSES


def get_loss_class(name: str) -> type[RelationLoss]:
    """Return the class registered under `name` (its facts: ``.spec``).

    Raises:
        ValueError: If the name is unknown; the message lists the registered names.
    """
    if name not in _LOSSES:
        raise ValueError(f"Expected a loss name in {list_losses()} but got {name!r}.")
    return _LOSSES[name]


def create_loss(name: str, num_classes: int, alpha: float | None = None, **kwargs: Any) -> RelationLoss:
    """Build a registered loss, like ``timm.create_model``.

    Args:
        name: A name from `list_losses()`.
        num_classes: Number of classes K (the model's output size).
        alpha: Mass moved off the one-hot (the same meaning for every method); ``None`` takes the method's default.
        **kwargs: Method-specific options (e.g. ``update_every`` for ``"ols"``).

    Returns:
        The loss module. Losses whose spec has ``requires_optimizer`` own parameters: add them to the optimizer.
    """
    return get_loss_class(name)(num_classes=num_classes, alpha=alpha, **kwargs)


def describe_defaults(names: list[str] | None = None) -> str:
    """``"ls 0.1, ols 0.5, ..."``: each method's default alpha, for help texts."""
    specs = [get_loss_class(n).spec for n in (names or list_losses())]
    return ", ".join(f"{s.name} {s.default_alpha:g}" for s in specs if s.default_alpha)
