"""LLS, Learnable Label Smoothing (docs/methods.md "lls"): learnable logits Q, R = softmax(Q), symmetric KL."""
from __future__ import annotations

import torch
from torch import Tensor

from .functional import LOG_TINY, may_sync, one_hot, safe_log
from .kernels import fused_lls
from .kernels.fused_soft import SoftLLS, soft_targets, zero_relation_gradient
from .kernels.fused_lls import NORMAL
from .learnable import LearnableRelationLoss
from .registry import MethodCard, MethodSpec, register_loss

SPEC = MethodSpec(
    name="lls", default_alpha=0.1, learns_relations=True, requires_optimizer=True,
    relation_weight_decay=0.0,  # the appendix pseudo-code applies no decay to Q
    supports_top_n=True, logits_kind="softmax", period_option="refresh_every", period_needs_top_n=True,
    card=MethodCard(
        title="Learnable Label Smoothing (LLS)",
        description="LLS learns logits Q with R[y] = softmax(Q[y]) (diagonal included). Target "
                    "(1-α)·e_y + α·R[y], loss (KL(t‖p) + KL(p‖t)) / 2 with gradients to the network and Q.",
        bibtex="@misc{anonymous_lls,\n  title  = {LLS: Regulating Neural Network Training via Learnable Label "
               "Smoothing},\n  author = {Anonymous authors},\n  note   = {Paper under double-blind review}\n}",
    ),
)


@register_loss(SPEC)
class LearnableLabelSmoothing(LearnableRelationLoss):
    """Target t = (1-α)·e_y + α·softmax(Q[y]); loss (KL(t‖p) + KL(p‖t)) / 2, gradients to the network and Q.

    This loss owns a parameter (`logits`, K×K, zero-initialised): **add `loss.parameters()` to the optimizer**
    (the paper trains Q with the network's optimizer), or Q never learns. Keep it out of weight decay
    (`no_weight_decay()` names it, as timm's optimizer factory expects).

    Args:
        num_classes: Number of classes K.
        alpha: Mass moved off the one-hot onto R[y] (default 0.1).
        top_n: Keep N learnable classes per row (`logits` K×N plus `tail_logits` K, `TopNLogits`), the paper's
            Sec. 6 proposal; ``None`` (default) is the dense K×K parameter. N = K equals the dense loss.
        slot_init: K×N class ids to start the slots from (e.g. a prior's top-N); default: y, y+1, …, y+N-1 mod K.
        refresh_every: Refresh the slots every N training batches (default: at each `end_epoch()`).
        swap_fraction: At most this fraction of a row's slots is swapped per refresh.
        candidates: Width of the per-row table of confused classes recorded between refreshes.
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    casts_logits = True  # hard labels: fused float32 maths (`kernels.fused_lls`) straight from the logits' own dtype

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        """Per-sample loss. log t is exact (log α + log R) where α·R underflows float32, on every path; where t is
        exactly 0 (α = 0: class ids take the plain path, as -inf logits need) it is log(tiny), so KL(p‖t) stays finite.
        """
        if labels is not None and self.alpha > 0:  # top-N: the fused pass also finds the most probable wrong classes
            return self.rows.hard_loss(fused_lls, logits, labels, self.alpha)
        dense = one_hot(labels, self.num_classes) if labels is not None else target
        assert dense is not None  # soft targets always come dense (RelationLoss.forward)
        loss = SoftLLS.apply(logits, *self._targets(dense))  # fused, -inf-safe
        return loss if self.alpha > 0 else loss + zero_relation_gradient(self.relation_rows, logits)

    def _targets(self, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """(t, log t) in float32; log t stays exact where α·R is below float32's normal range: such targets are built
        in float64 (checked on the CPU, one host sync; always where that would sync, `may_sync`). log t = log(tiny)
        where t = 0; None when t >= NORMAL everywhere (`SoftLLS` takes the log itself)."""
        if self.alpha == 0:
            return target, safe_log(target)
        t = soft_targets(target, self.relation_rows, self.alpha, dense=self.top_n is None)
        if may_sync(t) and bool((t.amin(dim=-1) >= NORMAL).all()):
            return t, None

        def rows(classes: Tensor) -> Tensor:
            return self.rows.relation_rows(classes, torch.float64)

        t = soft_targets(target.double(), rows, self.alpha, dense=self.top_n is None)
        log_t = torch.where(t > 0, t.clamp_min(torch.finfo(t.dtype).tiny).log(), LOG_TINY)
        return t.float(), log_t.float()
