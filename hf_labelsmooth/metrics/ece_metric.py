"""Expected calibration error as an `evaluate.Metric`: works offline, directly or via `evaluate.load(<this file>)`.

Usage::

    from hf_labelsmooth.metrics.ece_metric import ExpectedCalibrationError
    ece = ExpectedCalibrationError()
    ece.compute(predictions=probs, references=labels)          # {"ece": 0.031}
    # or, by file path (no Hub access): evaluate.load(hf_labelsmooth.metrics.ece_metric.__file__)

`predictions` are per-class probabilities [N, K] (pass ``from_logits=True`` for logits). The value is
`hf_labelsmooth.metrics.functional.expected_calibration_error` (equal-width confidence bins, Guo et al. 2017).
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
import torch

from hf_labelsmooth.metrics.functional import expected_calibration_error

_DESCRIPTION = """Expected calibration error: the bin-weighted mean gap between confidence (max probability) and
accuracy over `n_bins` equal-width confidence bins. 0 is perfectly calibrated; reported in [0, 1]."""
_CITATION = """@inproceedings{guo2017calibration, title={On Calibration of Modern Neural Networks},
author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.}, booktitle={ICML}, year={2017}}"""
_KWARGS = """Args:
    predictions: [N, K] class probabilities (rows summing to 1), or logits with `from_logits=True`.
    references: [N] integer class ids.
    n_bins: Number of equal-width confidence bins (default 15).
    from_logits: Apply a softmax to `predictions` first (default False).
Returns:
    {"ece": float in [0, 1]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ExpectedCalibrationError(evaluate.Metric):
    """`evaluate` wrapper of `expected_calibration_error`; accumulates with `add_batch` like any metric."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(self, predictions: list, references: list, n_bins: int = 15, from_logits: bool = False) -> dict:
        probs = torch.as_tensor(np.asarray(predictions, dtype=np.float32))
        labels = torch.as_tensor(np.asarray(references, dtype=np.int64))
        if probs.ndim != 2 or len(probs) != len(labels):
            raise ValueError(f"Expected predictions [N, K] and references [N] but got {tuple(probs.shape)} and "
                             f"{tuple(labels.shape)}; pass one probability row per example.")
        if from_logits:
            probs = probs.softmax(dim=-1)
        elif len(probs) and not torch.allclose(probs.sum(-1), torch.ones(len(probs)), atol=1e-3):
            raise ValueError("Expected probability rows summing to 1 but got other sums; pass from_logits=True "
                             "for logits.")
        return {"ece": expected_calibration_error(probs, labels, n_bins=n_bins)}
