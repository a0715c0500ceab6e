"""Shared base of the losses that learn K×K relation logits (LS++, LLS): dense or sparse top-N storage."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .sparse.slots import SparseLogitsMixin, check_top_n
from .base import RelationLoss


class LearnableRelationLoss(SparseLogitsMixin, RelationLoss):
    """A `RelationLoss` with learnable relation logits: dense `logits` K×K, or N slots per row with `top_n=N`.

    Subclasses set `include_self` (may a row hold its own class) and implement `compute`, `relation_rows` and
    `relation_matrix`. Args are those of LLS / LS++ (see their docstrings).
    """

    requires_optimizer = True
    learns_relations = True
    supports_top_n = True
    period_option = "refresh_every"
    dense_hard_targets = False

    def __init__(self, num_classes: int, alpha: float | None = None, top_n: int | None = None,
                 slot_init: Tensor | None = None, refresh_every: int | None = None, swap_fraction: float = 0.125,
                 candidates: int = 8, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        self.top_n = check_top_n(top_n, num_classes, self.max_related)
        if self.top_n is None:
            self.logits = nn.Parameter(torch.zeros(num_classes, num_classes))
        else:
            self._init_sparse(self.top_n, slot_init, refresh_every, swap_fraction, candidates)
        self._confusions: tuple[Tensor, Tensor] | None = None  # sparse training: (wrong class, probability) per row

    @classmethod
    def has_update_period(cls, top_n: int | None = None) -> bool:
        """Only sparse rows are refreshed (their slots); dense logits learn by gradient alone."""
        return top_n is not None

    @property
    def max_related(self) -> int:
        """Number of classes a row can relate to: K, or K-1 when the own class is excluded."""
        return self.num_classes - (0 if self.include_self else 1)

    def relation_topk(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Largest entries of each row of R: (indices [K, n], values [K, n]); sparse: the slots (n <= top_n)."""
        if self.top_n is not None:
            return SparseLogitsMixin.relation_topk(self, n)
        return RelationLoss.relation_topk(self, n or self.max_related)

    def update(self, logits: Tensor, target: Tensor | None, labels: Tensor | None, valid: Tensor | None = None) -> None:
        """Sparse rows: record the confusions the fused hard-label pass found (`_confusions`), else scan the logits;
        rows of ignored labels (`valid` False) record nothing."""
        confusions, self._confusions = self._confusions, None
        if self.top_n is None:
            return
        if labels is not None and confusions is not None:
            self._record_confusions(labels, *confusions, valid=valid)
        elif labels is not None:
            self._observe_confusions(logits, labels, valid)
        else:
            assert target is not None  # soft targets always come dense (RelationLoss.forward)
            self._observe_confusions(logits, target.argmax(dim=-1))

    def end_epoch(self) -> None:
        """Refresh the sparse slots at the epoch end (unless `refresh_every` batches is the period)."""
        if self.top_n is not None and self.refresh_every is None:
            self.refresh()
