"""Offline evaluation metrics for `Trainer(compute_metrics=...)` (``evaluate.load("accuracy")`` needs the Hub)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def classification_metrics(eval_pred: Any) -> dict[str, float]:
    """Top-1 accuracy, NLL and expected calibration error from a `transformers.EvalPrediction` (logits, labels).

    `eval_loss` is each method's own training loss, so it cannot compare runs of different methods; `nll` (plain
    cross-entropy of the logits) and `ece` can.

    Args:
        eval_pred: `EvalPrediction` or a ``(predictions, label_ids)`` pair; predictions are logits [N, K]
            (or a tuple whose first item is), label ids are [N] class ids.

    Returns:
        ``{"accuracy": float, "nll": float, "ece": float}`` (the Trainer reports them as ``eval_accuracy``, ...).
    """
    from .functional import expected_calibration_error

    predictions, labels = eval_pred[0], eval_pred[1]
    logits = torch.from_numpy(np.asarray(predictions[0] if isinstance(predictions, (tuple, list)) else predictions,
                                         dtype=np.float32))
    targets = torch.from_numpy(np.asarray(labels).astype(np.int64))
    if not len(targets):
        return {"accuracy": 0.0, "nll": 0.0, "ece": 0.0}
    accuracy = float((logits.argmax(-1) == targets).float().mean())
    nll = float(torch.nn.functional.cross_entropy(logits, targets))
    ece = float(expected_calibration_error(logits.softmax(-1), targets))
    return {"accuracy": accuracy, "nll": nll, "ece": ece}
