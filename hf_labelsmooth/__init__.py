"""hf_labelsmooth: class-relation label smoothing (OLS, LS++, LLS, SLR) for timm and Hugging Face."""
from __future__ import annotations

from .losses import RelationLoss, create_loss, get_loss_class, is_loss, list_losses, register_loss

__version__ = "0.1.0"
__all__ = ["RelationLoss", "create_loss", "get_loss_class", "is_loss", "list_losses", "register_loss"]
