"""OLS, Online Label Smoothing (docs/methods.md "ols"): R is the average of last period's correct predictions."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import RelationLoss
from .eager import eager_only
from .kernels.fused_ce import smoothed_cross_entropy
from .kernels.fused_soft import soft_cross_entropy, soft_targets
from .registry import MethodCard, MethodSpec, register_loss
from .sparse.slots import check_top_n
from .storage import AveragedRows, DenseAverages, TopNAverages

EMPTY_ROW_POLICIES = ("uniform", "keep")
SPEC = MethodSpec(
    name="ols", default_alpha=0.5, learns_relations=True, supports_top_n=True, period_option="update_every",
    card=MethodCard(
        title="Online Label Smoothing (OLS)",
        description="OLS accumulates, for every class, the predicted distributions of the correctly classified "
                    "training samples during an epoch; the normalised rows become the soft targets of the next "
                    "epoch. Loss: (1-α)·CE(e_y, p) + α·H(R[y], p).",
        alpha_note="the paper's α, the weight of the hard term, is 1 - α",
        bibtex="@misc{zhang_delving_label_smoothing,\n  title  = {Delving Deep into Label Smoothing},\n"
               "  author = {Zhang, Chang-Bin and Jiang, Peng-Tao and Hou, Qibin and Wei, Yunchao and Han, Qi and "
               "Li, Zhen and Cheng, Ming-Ming}\n}",
    ),
)


@register_loss(SPEC)
class OnlineLabelSmoothing(RelationLoss):
    """Loss (1-α)·CE(t, p) + α·H(t @ S, p) with S refreshed from averaged correct predictions (α default 0.5).

    `alpha` is the mass moved off the one-hot, as for every method (docs/methods.md): the target
    is (1-α)·e_y + α·S[y]. The paper's α weights the hard term instead: α_paper = 1 - alpha (both 0.5 by default).

    During training, each correctly classified sample (the logit of its class `argmax t` is the row maximum; ties
    count as correct, for class ids and soft targets alike) adds its detached probabilities to row `argmax t` of an
    accumulator A. `end_epoch()` (or every `update_every` training batches) sums A across processes, normalises its
    rows into the new S and zeroes A. S starts uniform, so the first period is label smoothing.

    Args:
        num_classes: Number of classes K.
        alpha: Mass moved off the one-hot onto S[y] (default 0.5; the paper's α is 1 - alpha).
        update_every: Swap every N training batches instead of at `end_epoch()` (paper Fig. 5b).
        empty_row: Row of a class with no correct sample in the period: ``"uniform"`` (authors' code,
            docs/methods.md) or ``"keep"`` (the previous row).
        freeze_threshold: Freeze a row once its maximum reaches this value (authors' fine-grained code: 0.88): a
            frozen row keeps its value at later swaps, by design. As in the authors' code, a class with no correct
            sample in a period is first reset per `empty_row`; with ``"uniform"`` that also unfreezes it (its
            maximum drops to 1/K), so a row stays frozen only while its class keeps being classified correctly.
        top_n: Keep only N classes per row of S and of A (memory O(K·N) instead of O(K²); `TopNAverages`).
            ``None`` (default) is the dense K×K matrix (`DenseAverages`).
        buffer_factor: Sparse accumulator width, in multiples of `top_n` (more = closer to the dense top-N).
        **kwargs: `reduction`, `check_inputs` (see `RelationLoss`).
    """

    dense_hard_targets = False
    casts_logits = True
    frozen: Tensor  # buffer: rows kept at swaps (`freeze_threshold`)
    counts: Tensor  # state: correct samples per class in the period
    steps: Tensor  # buffer: training batches seen

    def __init__(self, num_classes: int, alpha: float | None = None, update_every: int | None = None,
                 empty_row: str = "uniform", freeze_threshold: float | None = None, top_n: int | None = None,
                 buffer_factor: int = 2, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        if update_every is not None and (not isinstance(update_every, int) or update_every < 1):
            raise ValueError(f"Expected `update_every` to be a positive integer or None but got {update_every!r}.")
        if empty_row not in EMPTY_ROW_POLICIES:
            raise ValueError(f"Expected `empty_row` in {EMPTY_ROW_POLICIES} but got {empty_row!r}.")
        self.update_every, self.empty_row, self.freeze_threshold = update_every, empty_row, freeze_threshold
        top_n = check_top_n(top_n, num_classes, num_classes)
        k = num_classes
        self.register_buffer("frozen", torch.zeros(k, dtype=torch.bool))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.rows: AveragedRows = DenseAverages(self) if top_n is None else TopNAverages(self, top_n, buffer_factor)
        self.add_state("counts", torch.zeros(k))
        self._seen: tuple[Tensor, Tensor | None] | None = None  # (probabilities, correct) of the batch, from `compute`
        self._period_steps: int | None = 0  # host copy of `steps` (None after a load: read at the next check)
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "_period_steps", None))

    @property
    def top_n(self) -> int | None:
        """N of the top-N rows, or None (dense)."""
        return self.rows.top_n

    def relation_rows(self, classes: Tensor) -> Tensor:
        return self.rows.relation_rows(classes)

    def _read_rows(self, classes: Tensor) -> Tensor:
        """S[classes] as the loss reads them: checked to be distributions (with `check_inputs`)."""
        return self.checked_rows(self.rows.relation_rows(classes), classes, "matrix")

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        if labels is not None:  # fused: target (1-α)·e_y + α·S[y]; its softmax and correctness feed `update`
            loss, probs, correct = smoothed_cross_entropy(logits, labels, self.alpha, self._read_rows(labels))
            self._seen = (probs, correct) if self.training else None
            return loss
        assert target is not None  # soft targets always come dense (RelationLoss.forward)
        # (1-α)·H(t₀, p) + α·H(t₀ @ S, p) in one H; the rows read are checked (`_read_rows`)
        t = soft_targets(target, self._read_rows, self.alpha, dense=self.top_n is None)
        loss, probs = soft_cross_entropy(logits, t)  # fused; its softmax feeds `update`
        self._seen = (probs, None) if self.training else None
        return loss

    def update(self, logits: Tensor, target: Tensor | None, labels: Tensor | None, valid: Tensor | None = None) -> None:
        """Add the correct samples' probabilities to A (rows of ignored labels, `valid` False, count as not correct)."""
        seen, self._seen = self._seen, None
        if labels is None:
            assert target is not None  # soft targets always come dense (RelationLoss.forward)
            classes = target.argmax(dim=-1)
        else:
            classes = labels
        probs, correct = seen if seen is not None else (logits.float().softmax(dim=-1), None)  # from the fused loss
        if correct is None:
            correct = logits.gather(1, classes[:, None]).squeeze(1) >= logits.amax(dim=-1)  # ties count as correct
        correct = self.valid(correct)  # a batch flagged by a deferred check adds nothing
        if valid is not None:
            correct = correct & valid
        self.rows.accumulate(probs, classes, correct)
        self.counts.index_add_(0, classes, correct.float())
        self.steps += 1
        if self.update_every is not None:
            self._swap_on_period()

    @eager_only
    def _swap_on_period(self) -> None:
        """Swap every `update_every` batches (a host sync and collectives: a graph break under torch.compile)."""
        assert self.update_every is not None  # called only when a period is set
        self._period_steps = (self._host_steps() if self._period_steps is None else self._period_steps) + 1
        if self._period_steps % self.update_every == 0:
            self.swap()

    def _host_steps(self) -> int:
        """`steps` read once (after construction or a load), then counted on the host: no sync per batch."""
        return int(self.steps) - 1

    def end_epoch(self) -> None:
        """Swap at the epoch end, unless the period is `update_every` batches."""
        if self.update_every is None:
            self.swap()

    @torch.no_grad()
    def swap(self) -> None:
        """Sum A across processes, normalise its rows into S (empty rows per `empty_row`), zero A."""
        self.raise_deferred("a swap")  # nothing is installed from a batch a deferred check flagged
        self.sync_states()
        if self.check_inputs:  # one host read per period: the statistics must be finite and non-negative
            self.check_states("the statistics accumulated for this swap")
        self.rows.swap(self.counts > 0, self.empty_row, self.frozen, self.freeze_threshold)
        self.counts.zero_()

    def relation_matrix(self) -> Tensor:
        return self.rows.relation_matrix()

    def relation_topk(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Top entries of each row of S: (indices [K, n], values [K, n]); top-N rows: the slots (n <= top_n)."""
        return self.rows.relation_topk(n)
