"""ECE against a loop written from the definition."""
from __future__ import annotations

import torch

from hf_labelsmooth.metrics.functional import expected_calibration_error


def _ece_by_loop(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> float:
    conf, pred = probs.max(-1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            acc = (pred[in_bin] == labels[in_bin]).float().mean()
            total += in_bin.float().mean().item() * abs(acc.item() - conf[in_bin].mean().item())
    return total


def test_ece_matches_definition() -> None:
    probs = torch.softmax(torch.randn(500, 7) * 2, -1)
    labels = torch.randint(0, 7, (500,))
    assert abs(expected_calibration_error(probs, labels, 10) - _ece_by_loop(probs, labels, 10)) < 1e-6


def test_perfectly_confident_and_right_is_zero() -> None:
    labels = torch.arange(4)
    assert expected_calibration_error(torch.eye(4), labels) == 0.0
    assert abs(expected_calibration_error(torch.eye(4), (labels + 1) % 4) - 1.0) < 1e-6
