"""LS++, Label Smoothing++ (docs/methods.md "lspp"): learnable non-target logits C, stop-gradient symmetric CE."""
from __future__ import annotations

from torch import Tensor

from .functional import one_hot
from .kernels import fused_lspp
from .kernels.fused_soft import SoftLSPP, soft_targets, zero_relation_gradient
from .learnable import LearnableRelationLoss
from .registry import MethodCard, MethodSpec, register_loss

SPEC = MethodSpec(
    name="lspp", default_alpha=0.1, learns_relations=True, requires_optimizer=True,
    relation_weight_decay=None,  # None: same weight decay as the network (the authors' setting)
    supports_top_n=True, logits_kind="masked_softmax", period_option="refresh_every", period_needs_top_n=True,
    card=MethodCard(
        title="Label Smoothing++ (LS++)",
        description="LS++ learns logits C; row y is a softmax over the K-1 non-target classes (diagonal exactly 0). "
                    "Target (1-α)·e_y + α·R[y], symmetric cross-entropy with stop-gradients.",
        bibtex="@misc{chhabra_label_smoothing_plus_plus,\n  title  = {Label Smoothing++: Enhanced Label "
               "Regularization for Training Neural Networks},\n  author = {Chhabra, Sachin and Venkateswara, "
               "Hemanth and Li, Baoxin}\n}",
    ),
)


@register_loss(SPEC)
class LabelSmoothingPlusPlus(LearnableRelationLoss):
    """Target t = (1-α)·e_y + α·softmax_{k≠y}(C[y]); loss (H(sg(t), p) + H(sg(p), t)) / 2.

    The first term trains only the network, the second only C (stop-gradients, LS++ Table 5). The diagonal
    of R is exactly 0, so the target-class probability is exactly 1-α.

    This loss owns a parameter (`logits`, K×K, zero-initialised, diagonal unused): **add `loss.parameters()`
    to the optimizer** (the authors use the network's optimizer, lr and weight decay), or C never learns.

    Args:
        num_classes: Number of classes K.
        alpha: Mass moved off the one-hot onto R[y] (default 0.1).
        top_n: Keep N learnable non-target classes per row (`logits` K×N plus `tail_logits` K, `TopNLogits`);
            ``None`` (default) is the dense K×K parameter. N = K-1 equals the dense loss.
        slot_init: K×N class ids to start the slots from (e.g. a prior's top-N); default: y+1, …, y+N mod K.
        refresh_every: Refresh the slots every N training batches (default: at each `end_epoch()`).
        swap_fraction: At most this fraction of a row's slots is swapped per refresh.
        candidates: Width of the per-row table of confused classes recorded between refreshes.
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    casts_logits = True  # `compute` gets the logits in their own dtype (bf16: no float32 copy before the loss)

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        """Per-sample loss; class ids take the fused paths (`kernels.fused_lspp`), which read `logits` in their own
        dtype. R[y] is a softmax over k ≠ y of C[y] (zero on the diagonal)."""
        if labels is not None and self.alpha > 0:  # α = 0 (one-hot target): the plain path below, exact at -inf logits
            return self.rows.hard_loss(fused_lspp, logits, labels, self.alpha)
        target = one_hot(labels, self.num_classes) if labels is not None else target
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        t = soft_targets(target, self.relation_rows, self.alpha, dense=self.top_n is None)
        loss = SoftLSPP.apply(logits, t)  # fused, -inf-safe
        return loss if self.alpha > 0 else loss + zero_relation_gradient(self.relation_rows, logits)
