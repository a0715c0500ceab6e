"""Evaluation metrics: expected calibration error (functional), the Trainer's `compute_metrics`, and an
`evaluate.Metric` wrapper (``hf_labelsmooth.metrics.ece_metric``, imported on demand: it needs `evaluate`)."""
from __future__ import annotations

from .classification import classification_metrics
from .functional import expected_calibration_error, relation_stats

__all__ = ["classification_metrics", "expected_calibration_error", "relation_stats"]
