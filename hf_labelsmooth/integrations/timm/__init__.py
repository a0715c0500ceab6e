"""timm integration: the loss factory with our names, a task that trains and checkpoints learnable matrices, and
the launcher that runs timm's own ``train.py`` with them (``hf-labelsmooth timm-train``).

This package imports timm (the ``[timm]`` extra) on first use of a name below; ``launcher`` itself imports timm
only when it launches, so that the command line stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {  # name -> module, imported on first access
    "TIMM_LOSS_TYPES": ".loss",
    "create_classification_loss": ".loss",
    "is_relation_loss_type": ".loss",
    "list_classification_loss_types": ".loss",
    "RelationClassificationTask": ".task",
    "RelationTrainableModule": ".task",
    "add_relation_param_group": ".param_group",
    "LaunchOptions": ".launcher",
    "LaunchResult": ".result",
    "launch": ".launcher",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
