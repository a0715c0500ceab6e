"""`MatrixCheck`: after each training epoch, says once when a learnable matrix has not moved (and why) and once
when its rows collapse onto single classes (and what to do), in the ``hf_labelsmooth.optim`` log."""
from __future__ import annotations

import logging
from typing import Any

import torch

from .losses.base import RelationLoss

logger = logging.getLogger("hf_labelsmooth.optim")

STILL_THRESHOLD = 1e-2  # max |Δ logits| under which a matrix "has not moved" (R's entries changed by about 1 %)
WARMUP_FRACTION = 0.1  # an epoch whose largest lr stayed below this share of the matrix's lr is a warmup: not judged
# A row whose largest off-diagonal entry exceeds this puts most of its smoothing mass on one other class: the target
# becomes a second hard label. Measured (benchmarks/results_fidelity_audio_w2v.md, issue 25): rows that help reach
# 0.2-0.3, a matrix lr 3x too large 0.8, a collapsed run 0.94 with every row above 0.5.
COLLAPSE_THRESHOLD = 0.5
MAX_CHECKED_CLASSES = 4096  # above this the K x K matrix is not materialised for the collapse check


class MatrixCheck:
    """Warn once (``hf_labelsmooth.optim`` logger) when a learnable matrix has not moved after an epoch, and once
    when some of its rows have collapsed onto one class.

    Not moved: a matrix whose logits stay within `threshold` of where training started is uniform smoothing under
    another name. The cause named is alpha 0 (no gradient reaches the matrix) or a learning rate too small; an epoch
    whose largest applied lr (`observe`, from the group given to `follow`) stayed below `WARMUP_FRACTION` of the
    group's lr before scheduling is a warmup and is not judged. Collapsed: a row whose largest off-diagonal entry
    exceeds `COLLAPSE_THRESHOLD`; the cause is a matrix lr too large for the run's length. Call `start` when
    training starts (after a resume), `observe` at optimizer steps (or epoch starts) and `check` at each epoch end.

    Args:
        loss: The loss; losses without trainable parameters are never checked.
        flag: The option that sets the matrix's learning rate, named in the warnings (``--relation_lr``).
        threshold: Largest max |Δ logits| that counts as not moved.
        alpha_flag: The option that sets alpha, named when alpha is 0.
    """

    def __init__(self, loss: RelationLoss, flag: str = "relation_lr", threshold: float = STILL_THRESHOLD,
                 alpha_flag: str = "alpha") -> None:
        self.loss, self.flag, self.threshold, self.alpha_flag = loss, flag, threshold, alpha_flag
        self.warned = self.warned_collapse = False
        self._start: list[torch.Tensor] = []
        self._group: dict[str, Any] | None = None
        self._epoch_lr: float | None = None
        self.start()

    def _params(self) -> list[torch.Tensor]:
        return [p for p in self.loss.parameters() if p.requires_grad]

    def start(self) -> None:
        """Remember the current logits as the starting point."""
        self._start = [p.detach().clone() for p in self._params()]

    def follow(self, group: dict[str, Any] | None) -> None:
        """The matrix's optimizer param group, whose applied lr `observe` records."""
        self._group = group

    def observe(self) -> None:
        """Record the lr the followed group applies now (the epoch's largest is kept)."""
        if self._group is not None:
            lr = float(self._group["lr"])
            self._epoch_lr = lr if self._epoch_lr is None else max(self._epoch_lr, lr)

    def moved(self) -> float:
        """Largest absolute change of any logit since `start` (0.0 without parameters)."""
        deltas = [float((p.detach() - p0.to(p.device)).abs().max()) for p, p0 in zip(self._params(), self._start)
                  if p.numel()]
        return max(deltas, default=0.0)

    def check(self, epoch: float, lr: float | None = None) -> bool:
        """At an epoch end: warn (once each) when the matrix has not moved or has collapsed; returns whether a
        warning was given now. `lr`: the lr applied in the epoch, when no group is followed."""
        self.observe()
        epoch_lr, self._epoch_lr = (self._epoch_lr if self._group is not None else lr), None
        return self._check_collapse(epoch) | self._check_still(epoch, epoch_lr)

    def _check_still(self, epoch: float, epoch_lr: float | None) -> bool:
        if self.warned or not self._start:
            return False
        moved = self.moved()
        if moved >= self.threshold:
            return False
        if float(getattr(self.loss, "alpha", 1.0)) == 0.0:
            cause = (f"alpha is 0, which gives the matrix no gradient (the loss is plain cross-entropy). Set "
                     f"`{self.alpha_flag}` above 0 to learn relations")
        else:
            base = float(self._group.get("initial_lr", self._group["lr"])) if self._group is not None else None
            if base is not None and epoch_lr is not None and epoch_lr < WARMUP_FRACTION * base:
                return False  # a warmup epoch: its lr is tiny by schedule, judge a later one
            at = f" (applied in this epoch: {epoch_lr:g})" if epoch_lr is not None else ""
            cause = f"it still smooths uniformly. Raise `{self.flag}`{at}"
        self.warned = True
        logger.warning("The learnable relation matrix of %r has not moved after epoch %g: max |Δ logits| = %.2g < %g: "
                       "%s.", self.loss.spec.name, epoch, moved, self.threshold, cause)
        return True

    def _check_collapse(self, epoch: float) -> bool:
        if self.warned_collapse or not self._start or self.loss.num_classes > MAX_CHECKED_CLASSES:
            return False
        stats = collapse_stats(self.loss.relation_matrix())
        if not stats["collapsed_rows"]:
            return False
        self.warned_collapse = True
        lr = f" ({float(self._group.get('initial_lr', self._group['lr'])):g})" if self._group is not None else ""
        logger.warning("The learnable relation matrix of %r has collapsed after epoch %g: %d of %d rows put more than "
                       "%g of their smoothing mass on one other class (largest entry %.2f), so smoothing becomes a "
                       "second hard label. The usual cause is a matrix lr%s too large for the run's length: lower "
                       "`%s` (the default, max(lr, 3 / total steps), gives the matrix about 3 units of logit travel).",
                       self.loss.spec.name, epoch, stats["collapsed_rows"], self.loss.num_classes, COLLAPSE_THRESHOLD,
                       stats["max_offdiag"], lr, self.flag)
        return True


def collapse_stats(matrix: torch.Tensor) -> dict[str, float]:
    """Largest off-diagonal entry of a row-stochastic matrix and the rows whose largest exceeds the threshold."""
    m = matrix.detach().float()
    off = m.masked_fill(torch.eye(m.shape[0], dtype=torch.bool, device=m.device), 0.0).amax(-1)
    return {"max_offdiag": float(off.max()), "collapsed_rows": int((off > COLLAPSE_THRESHOLD).sum())}


StillMatrixCheck = MatrixCheck  # its former name
