"""Offline evaluation metrics for `Trainer(compute_metrics=...)` (``evaluate.load("accuracy")`` needs the Hub)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """Top-1 accuracy and expected calibration error from a `transformers.EvalPrediction` (logits, labels).

    Args:
        eval_pred: `EvalPrediction` or a ``(predictions, label_ids)`` pair; predictions are logits [N, K]
            (or a tuple whose first item is), label ids are [N] class ids.

    Returns:
        ``{"accuracy": float, "ece": float}``.
    """
    predictions, labels = eval_pred[0], eval_pred[1]
    logits = np.asarray(predictions[0] if isinstance(predictions, (tuple, list)) else predictions)
    labels = np.asarray(labels)
    accuracy = float((logits.argmax(-1) == labels).mean()) if labels.size else 0.0
    from .functional import expected_calibration_error

    probs = torch.from_numpy(logits.astype(np.float32)).softmax(-1)
    ece = float(expected_calibration_error(probs, torch.from_numpy(labels.astype(np.int64))))
    return {"accuracy": accuracy, "ece": ece}
