"""timm's loss factory extended with the registered relation losses (``--loss-type`` / ``--loss`` names)."""
from __future__ import annotations

from typing import Any, TypeGuard

from timm.loss import LOSS_TYPES as TIMM_LOSS_TYPES
from timm.loss import create_classification_loss as timm_create_classification_loss
from torch import nn

from ...losses import create_loss, is_loss, list_losses

__all__ = ["TIMM_LOSS_TYPES", "create_classification_loss", "is_relation_loss_type", "list_classification_loss_types"]


def is_relation_loss_type(loss_type: str | None) -> TypeGuard[str]:
    """True for our losses (``"ls"``, ``"ols"``, ...); False for timm's own types (``"ce"``, ``"bce"``, ...)."""
    return loss_type is not None and loss_type not in TIMM_LOSS_TYPES and is_loss(loss_type)


def list_classification_loss_types() -> list[str]:
    """timm's loss types followed by the registered relation losses that timm does not define."""
    return list(TIMM_LOSS_TYPES) + [name for name in list_losses() if name not in TIMM_LOSS_TYPES]


def create_classification_loss(
    loss_type: str | None = None,
    num_classes: int | None = None,
    smoothing: float = 0.0,
    soft_targets: bool = False,
    alpha: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a classification criterion: timm's loss types unchanged, or a relation loss from `hf_labelsmooth`.

    Args:
        loss_type: A timm type (``timm.loss.LOSS_TYPES``: ce, bce, asl, ...), delegated to
            ``timm.loss.create_classification_loss`` with every other argument unchanged; or a relation loss
            (``"ls"``, ``"ols"``, ``"lspp"``, ``"lls"``, any registered name timm does not define).
        num_classes: Number of classes K; required for relation losses, ignored for timm's types.
        smoothing: timm's label smoothing (``--smoothing``). Relation losses take their smoothing from `alpha`
            and require ``smoothing=0``: with soft targets Mixup/CutMix have already applied it.
        soft_targets: Targets are dense Mixup/CutMix distributions [B, K] (relation losses accept both forms).
        alpha: Mass moved off the one-hot by a relation loss; ``None`` = the method's default.
        **kwargs: timm's keyword arguments for its types; method options for ours (``update_every``, ``matrix``).

    Returns:
        The criterion module; a `RelationLoss` for relation types (ours accept class ids and soft targets alike).

    Raises:
        ValueError: Unknown type, missing `num_classes`, or ``smoothing != 0`` with a relation loss.
    """
    if not is_relation_loss_type(loss_type):
        if loss_type is not None and loss_type not in TIMM_LOSS_TYPES:
            raise ValueError(f"Expected a loss type in {list_classification_loss_types()} but got {loss_type!r}.")
        if alpha is not None:
            raise ValueError(f"Expected alpha=None for timm's loss type {loss_type!r} but got {alpha}: alpha "
                             "(--ls-alpha) sets relation losses; use smoothing (--smoothing) with timm's types.")
        return timm_create_classification_loss(loss_type, smoothing=smoothing, soft_targets=soft_targets, **kwargs)
    if num_classes is None:
        raise ValueError(f"Expected `num_classes` (the model's output size) for loss {loss_type!r} but got None.")
    if smoothing:
        where = "Mixup/CutMix already smooth the soft targets, so it would smooth twice" if soft_targets else \
            "relation losses take the mass moved off the one-hot from `alpha` (--ls-alpha)"
        raise ValueError(f"Expected smoothing=0 with loss {loss_type!r} but got {smoothing}: {where}. "
                         "Pass smoothing=0 (--smoothing 0) and set `alpha` instead.")
    return create_loss(loss_type, num_classes=num_classes, alpha=alpha, **kwargs)
