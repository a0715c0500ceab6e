"""KL(L ‖ p) against per-sample soft labels (docs/methods.md "soft_kl", E step); a value loss for regression SLR."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import RelationLoss
from .kernels.fused_soft import soft_cross_entropy
from .registry import MethodCard, MethodSpec, register_loss
from .validation import check_reduction

SPEC = MethodSpec(
    name="soft_kl", default_alpha=0.0, soft_targets_only=True,
    card=MethodCard(
        title="Stochastic Label Refinery (SLR)",
        description="SLR refines per-sample soft labels by out-of-fold predictions (EM); a matrix saved from it "
                    "aggregates the refined labels per class.",
        bibtex="@misc{fang_stochastic_label_refinery,\n  title  = {Stochastic Label Refinery: Toward Better "
               "Target Label Distribution},\n  author = {Fang, Xi and Yang, Jiancheng and Ni, Bingbing}\n}",
    ),
)


@register_loss(SPEC)
class SoftKL(RelationLoss):
    """KL(L ‖ p) between per-sample soft labels L (FloatTensor [B, K]) and p = softmax(logits).

    The Stochastic Label Refinery trains every fold model with this loss against the current refined labels.
    Class ids [B] are accepted too (then L is one-hot and the loss equals cross-entropy). There is no class
    relation matrix: the relation lives in the per-sample labels, so `relation_matrix()` is the identity and
    `alpha` must stay 0. Its gradient equals the one of cross-entropy H(L, p); the value differs by the entropy
    of L, so a perfect fit reads 0.
    """

    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        if self.alpha != 0.0:
            raise ValueError(
                f"Expected `alpha` = 0 for 'soft_kl' but got {self.alpha}; smooth the soft labels themselves "
                "or use create_loss('ls')."
            )

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        assert target is not None  # dense_hard_targets: always set
        return soft_cross_entropy(logits, target)[0] + torch.special.xlogy(target, target).sum(dim=-1)  # H(L,p) - H(L)

    def relation_matrix(self) -> Tensor:
        return torch.eye(self.num_classes)


def soft_value_loss(predictions: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error for regression / ordinal SLR, where labels are refined values, not distributions.

    Args:
        predictions: Model outputs [B] or [B, D] (a [B, 1] head is squeezed to match [B] targets).
        targets: Refined values of the same shape (e.g. DR grades 0-4 averaged with out-of-fold predictions).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample values, summed over D).

    Returns:
        The float32 loss, computed outside autocast.
    """
    check_reduction(reduction)
    if predictions.ndim == targets.ndim + 1 and predictions.shape[-1] == 1:
        predictions = predictions.squeeze(-1)
    if predictions.shape != targets.shape:
        raise ValueError(
            f"Expected predictions of the targets' shape {tuple(targets.shape)} but got {tuple(predictions.shape)}. "
            "Give the model one output per target value (num_labels=1 for a scalar grade)."
        )
    with torch.autocast(device_type=predictions.device.type, enabled=False):
        err = F.mse_loss(predictions.float(), targets.float(), reduction="none")
        per_sample = err.reshape(err.shape[0], -1).sum(dim=-1) if err.ndim > 1 else err
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()
