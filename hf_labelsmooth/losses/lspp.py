"""LS++, Label Smoothing++ (docs/methods.md "lspp"): learnable non-target logits C, stop-gradient symmetric CE."""
from __future__ import annotations

import torch
from torch import Tensor

from .kernels.fused_lspp import DenseLSPP, SparseLSPP
from .kernels.fused_soft import SoftLSPP, soft_targets, zero_relation_gradient
from .registry import MethodCard, register_loss
from .learnable import LearnableRelationLoss
from .functional import masked_row_softmax, one_hot


@register_loss("lspp")
class LabelSmoothingPlusPlus(LearnableRelationLoss):
    """Target t = (1-α)·e_y + α·softmax_{k≠y}(C[y]); loss (H(sg(t), p) + H(sg(p), t)) / 2.

    The first term trains only the network, the second only C (stop-gradients, LS++ Table 5). The diagonal
    of R is exactly 0, so the target-class probability is exactly 1-α.

    This loss owns a parameter (`logits`, K×K, zero-initialised, diagonal unused): **add `loss.parameters()`
    to the optimizer** (the authors use the network's optimizer, lr and weight decay), or C never learns.

    Args:
        num_classes: Number of classes K.
        alpha: Mass moved off the one-hot onto R[y] (default 0.1).
        top_n: Keep N learnable non-target classes per row (`logits` K×N plus `tail_logits` K, see `_sparse`);
            ``None`` (default) is the dense K×K parameter. N = K-1 equals the dense loss.
        slot_init: K×N class ids to start the slots from (e.g. a prior's top-N); default: y+1, …, y+N mod K.
        refresh_every: Refresh the slots every N training batches (default: at each `end_epoch()`).
        swap_fraction: At most this fraction of a row's slots is swapped per refresh.
        candidates: Width of the per-row table of confused classes recorded between refreshes.
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    default_alpha = 0.1
    relation_weight_decay = None  # None: same weight decay as the network (the authors' setting)
    logits_kind = "masked_softmax"
    card = MethodCard(
        title="Label Smoothing++ (LS++)",
        description="LS++ learns logits C; row y is a softmax over the K-1 non-target classes (diagonal exactly 0). "
                    "Target (1-α)·e_y + α·R[y], symmetric cross-entropy with stop-gradients.",
        bibtex="@misc{chhabra_label_smoothing_plus_plus,\n  title  = {Label Smoothing++: Enhanced Label "
               "Regularization for Training Neural Networks},\n  author = {Chhabra, Sachin and Venkateswara, "
               "Hemanth and Li, Baoxin}\n}",
    )
    include_self = False
    casts_logits = True  # `compute` gets the logits in their own dtype (bf16: no float32 copy before the loss)

    def relation_rows(self, classes: Tensor) -> Tensor:
        """softmax over k ≠ class of C[class], float32, zero on the diagonal."""
        if self.top_n is not None:
            return self._sparse_log_rows(classes).exp()
        return masked_row_softmax(self.logits.float(), classes)

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        """Per-sample loss; class ids take the fused paths (`_fused_lspp`), which read `logits` in their own dtype."""
        if labels is not None and self.alpha > 0:  # α = 0 (one-hot target): the plain path below, exact at -inf logits
            if self.top_n is None:
                return DenseLSPP.apply(logits, labels, self.logits, self.alpha, torch.is_grad_enabled())
            loss, wrong, score = SparseLSPP.apply(logits, labels, *self._sparse_slot_logs(labels), self.n_tail,
                                                  self.alpha, self.training)
            self._confusions = (wrong, score) if self.training else None  # recorded by `update`
            return loss
        target = one_hot(labels, self.num_classes) if labels is not None else target
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        loss = SoftLSPP.apply(logits, soft_targets(target, self.relation_rows, self.alpha))  # fused, -inf-safe
        return loss if self.alpha > 0 else loss + zero_relation_gradient(self.relation_rows, logits)

    def relation_matrix(self) -> Tensor:
        if self.top_n is not None:
            return self._sparse_relation_matrix()
        classes = torch.arange(self.num_classes, device=self.logits.device)
        return masked_row_softmax(self.logits.detach().float(), classes)
