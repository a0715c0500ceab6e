"""The math: one loss per module, each registered by name. Imports neither timm nor transformers."""
from __future__ import annotations

import importlib
import pkgutil

from ._registry import create_loss, get_loss_class, is_loss, list_losses, register_loss
from .base import RelationLoss

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in ("base", "functional"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["RelationLoss", "create_loss", "get_loss_class", "is_loss", "list_losses", "register_loss"]
