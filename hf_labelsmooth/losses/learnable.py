"""Shared base of the losses that learn relation logits (LS++, LLS): the storage is `DenseLogits` or `TopNLogits`."""
from __future__ import annotations

from torch import Tensor

from .base import RelationLoss
from .sparse.slots import check_top_n
from .storage import DenseLogits, LogitRows, TopNLogits


class LearnableRelationLoss(RelationLoss):
    """A `RelationLoss` with learnable relation logits held in `rows`: dense `logits` K×K, or N slots per row with
    ``top_n=N`` (`logits` K×N plus `tail_logits` K). Row y excludes class y when the spec's `logits_kind` is
    ``"masked_softmax"`` (LS++).

    Subclasses implement `compute` (class ids: ``self.rows.hard_loss(<their kernels module>, ...)``). Args are
    those of LLS / LS++ (see their docstrings).
    """

    dense_hard_targets = False

    def __init__(self, num_classes: int, alpha: float | None = None, top_n: int | None = None,
                 slot_init: Tensor | None = None, refresh_every: int | None = None, swap_fraction: float = 0.125,
                 candidates: int = 8, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        top_n = check_top_n(top_n, num_classes, self.max_related)
        self.rows: LogitRows = (
            DenseLogits(self, self.include_self) if top_n is None
            else TopNLogits(self, top_n, self.include_self, slot_init, refresh_every, swap_fraction, candidates))

    @property
    def include_self(self) -> bool:
        """Whether row y may relate y to itself (False for ``logits_kind="masked_softmax"``, LS++)."""
        return self.spec.logits_kind != "masked_softmax"

    @property
    def max_related(self) -> int:
        """Number of classes a row can relate to: K, or K-1 when the own class is excluded."""
        return self.num_classes - (0 if self.include_self else 1)

    @property
    def top_n(self) -> int | None:
        """N of the top-N rows, or None (dense)."""
        return self.rows.top_n

    def relation_rows(self, classes: Tensor) -> Tensor:
        """R[classes] in float32 (differentiable)."""
        return self.rows.relation_rows(classes)

    def relation_matrix(self) -> Tensor:
        return self.rows.relation_matrix()

    def relation_topk(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Largest entries of each row of R: (indices [K, n], values [K, n]); top-N rows: the slots (n <= top_n)."""
        return self.rows.relation_topk(n)

    def update(self, logits: Tensor, target: Tensor | None, labels: Tensor | None, valid: Tensor | None = None) -> None:
        """Top-N rows: record the confused classes (found by the fused class-id pass, else by a scan) of the rows
        whose label counts (`valid`; None: all)."""
        self.rows.observe(logits, target, labels, valid)

    def end_epoch(self) -> None:
        """Top-N rows: refresh the slots at the epoch end (unless `refresh_every` batches is the period)."""
        self.rows.end_epoch()

    def no_weight_decay(self) -> set[str]:
        """The relation parameters when the spec's `relation_weight_decay` is 0 (LLS), for timm's optimizer factory."""
        return self.rows.parameter_names() if self.spec.relation_weight_decay == 0 else set()
