"""Evaluation metrics: expected calibration error (functional), the Trainer's `compute_metrics`, and an
`evaluate.Metric` wrapper (``hf_labelsmooth.metrics.ece_metric``, imported on demand: it needs `evaluate`)."""
from __future__ import annotations

from .classification import compute_accuracy
from .functional import expected_calibration_error, relation_stats

__all__ = ["compute_accuracy", "expected_calibration_error", "relation_stats"]
