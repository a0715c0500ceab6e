"""Class relations read out of any trained classifier: row c = its mean predicted distribution over samples of class c.

This is the proxy teacher of LS++ (Sec. 5.3) and the substitute teacher of LLS for a model trained with any loss:
the matrix is saved as a normal artifact (`ClassRelationMatrix`, method ``"extracted"``) and reused with
``relation_prior``. The math here is torch only; the model and data plumbing is in
`hf_labelsmooth.integrations.extraction` and ``hf-labelsmooth extract``.

Options (`ExtractionOptions`): only correctly classified samples (as OLS accumulates them), a softmax temperature,
and the diagonal excluded (the row renormalised over the other classes, as LS++'s matrix). A class with no counted
sample gets a uniform row (as OLS's ``empty_row="uniform"``; uniform over the other classes with `exclude_self`),
and `RelationExtractor.compute` warns with its names.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import Tensor


logger = logging.getLogger(__name__)
EXTRACTED_METHOD = "extracted"  # the `method` of an extracted artifact (no loss trained it)


@dataclass(frozen=True)
class ExtractionOptions:
    """How predictions become a matrix.

    Args:
        correct_only: Count only samples the model classifies correctly (OLS's statistic).
        temperature: Softmax temperature T of the logits (p = softmax(z / T)); T > 1 spreads the rows.
        exclude_self: Zero the diagonal and renormalise each row over the other classes.
    """

    correct_only: bool = False
    temperature: float = 1.0
    exclude_self: bool = False

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"Expected `temperature` > 0 (finite) but got {t!r}. Use 1 for the model's own "
                             "probabilities, > 1 to spread them.")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-serialisable fields (recorded in the artifact's config)."""
        return {**asdict(self), "temperature": float(self.temperature)}


class RelationExtractor:
    """Accumulate a classifier's predicted distributions per true class; `compute` gives the K×K matrix.

    Sums are kept in float64 on the device of the first batch, so millions of samples add up exactly enough.

    Saved like a loss's matrix: ``save_relations(extractor, label_names, folder, source_model=..., dataset=...,
    extraction=extractor.summary())`` writes a `ClassRelationMatrix` artifact with method ``"extracted"``.

    Args:
        num_classes: K.
        options: `ExtractionOptions` (default: every sample, T = 1, diagonal kept).
        label_names: Class names, to name uniform rows in the warning and the summary.
    """

    name = EXTRACTED_METHOD  # read as the artifact's `method` by `save_relations` (no `alpha`: nothing was trained)
    alpha = None

    def __init__(self, num_classes: int, options: ExtractionOptions | None = None,
                 label_names: Sequence[str] | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"Expected `num_classes` >= 2 but got {num_classes!r}.")
        self.num_classes = num_classes
        self.options = options or ExtractionOptions()
        self.label_names = list(label_names) if label_names is not None else None
        self.sums = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        self.counts = torch.zeros(num_classes, dtype=torch.long)  # samples counted per class
        self.seen = torch.zeros(num_classes, dtype=torch.long)  # samples seen per class (correct or not)
        self.correct = torch.zeros(num_classes, dtype=torch.long)

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add a batch: `logits` [B, K] (any float dtype, any device) and `targets` [B] class ids."""
        self._check(logits, targets)
        if self.sums.device != logits.device:
            self._to(logits.device)
        targets = targets.long()
        probs = (logits.double() / self.options.temperature).softmax(-1)
        hit = probs.argmax(-1) == targets
        keep = hit if self.options.correct_only else torch.ones_like(hit)
        self.sums.index_add_(0, targets, probs * keep.unsqueeze(-1))
        self.counts += torch.bincount(targets, weights=keep.double(), minlength=self.num_classes).long()
        self.seen += torch.bincount(targets, minlength=self.num_classes)
        self.correct += torch.bincount(targets, weights=hit.double(), minlength=self.num_classes).long()

    def _check(self, logits: Tensor, targets: Tensor) -> None:
        k = self.num_classes
        if logits.ndim != 2 or logits.shape[1] != k or not torch.is_floating_point(logits):
            raise ValueError(f"Expected float logits of shape [B, {k}] but got {tuple(logits.shape)} "
                             f"({logits.dtype}). The model must output one logit per class of the dataset.")
        if targets.shape != logits.shape[:1] or torch.is_floating_point(targets) or targets.dtype == torch.bool:
            raise ValueError(f"Expected integer class ids of shape [{logits.shape[0]}] but got "
                             f"{tuple(targets.shape)} ({targets.dtype}).")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= k):
            raise ValueError(f"Expected class ids in [0, {k}) but got values from {int(targets.min())} to "
                             f"{int(targets.max())}. Check the label column against the model's classes.")
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("Expected finite logits but got NaN or inf: the model's outputs are broken for this "
                             "batch (check its weights and inputs).")

    def _to(self, device: torch.device) -> None:
        for name in ("sums", "counts", "seen", "correct"):
            setattr(self, name, getattr(self, name).to(device))

    @property
    def num_samples(self) -> int:
        """Samples seen so far (counted or not)."""
        return int(self.seen.sum())

    @property
    def accuracy(self) -> float | None:
        """Accuracy of the model on the samples seen (None before any)."""
        return float(self.correct.sum()) / self.num_samples if self.num_samples else None

    def empty_classes(self) -> list[int]:
        """Classes with no counted sample (none in the data, or none correct with `correct_only`): uniform rows."""
        return [int(c) for c in torch.nonzero(self.counts == 0).flatten().tolist()]

    def compute(self) -> Tensor:
        """The K×K row-stochastic float32 matrix (CPU): mean distribution per class, options applied; a class with
        no counted sample gets a uniform row, with a warning naming it (`label_names`)."""
        k = self.num_classes
        matrix = self.sums.cpu() / self.counts.cpu().clamp_min(1).unsqueeze(-1).double()
        off = ~torch.eye(k, dtype=torch.bool)
        if self.options.exclude_self:
            matrix = matrix * off
        uniform = (off.double() / (k - 1)) if self.options.exclude_self else torch.full((k, k), 1.0 / k).double()
        sums = matrix.sum(-1, keepdim=True)
        empty = (self.counts.cpu() == 0) | (sums.squeeze(-1) <= 0)  # exclude_self: a row of exact one-hots
        matrix = torch.where(empty.unsqueeze(-1), uniform, matrix / sums.clamp_min(1e-300))
        if bool(empty.any()):
            rows = torch.nonzero(empty).flatten().tolist()
            names = [self.label_names[c] if self.label_names else str(c) for c in rows]
            logger.warning("%d of %d classes had no sample to count (%s): their rows are uniform, as OLS does.%s",
                           len(names), k, ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
                           " (correct_only: misclassified samples are not counted.)" if self.options.correct_only
                           else "")
        return matrix.float()

    def relation_matrix(self) -> Tensor:
        """`compute()`: what `save_relations` / `ClassRelationMatrix.from_loss` read from a loss."""
        return self.compute()

    def summary(self) -> dict[str, Any]:
        """The options and counts, JSON-serialisable (the artifact's ``extra["extraction"]``)."""
        names = self.label_names or [str(c) for c in range(self.num_classes)]
        return {**self.options.to_dict(), "samples": self.num_samples, "model_accuracy": self.accuracy,
                "empty_classes": [names[c] for c in self.empty_classes()]}
