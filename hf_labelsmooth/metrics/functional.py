"""Pure metric functions: expected calibration error (Guo et al., 2017) and class-relation matrix statistics."""
from __future__ import annotations

import torch
from torch import Tensor


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """ECE with `n_bins` equal-width confidence bins: Σ_b |B_b|/N · |acc(B_b) - conf(B_b)|.

    Args:
        probs: [N, K] predicted probabilities (rows sum to 1).
        labels: [N] true class ids.
        n_bins: Number of equal-width bins over (0, 1].

    Returns:
        ECE as a float in [0, 1].
    """
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"Expected probs [N, K] and labels [N] but got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}.")
    confidence, prediction = probs.float().max(dim=-1)
    correct = (prediction == labels).float()
    bins = torch.clamp((confidence * n_bins).ceil().long() - 1, 0, n_bins - 1)
    gap = torch.zeros(n_bins).index_add_(0, bins, correct - confidence)
    return float(gap.abs().sum() / max(len(labels), 1))


def relation_stats(matrix: Tensor) -> dict[str, float]:
    """Mean row entropy (nats), mean off-diagonal mass and largest off-diagonal entry of a row-stochastic
    class-relation matrix (an entry above ~0.5 is a row collapsed onto one class: see `hf_labelsmooth.matrix_check`)."""
    m = matrix.detach().float().cpu()
    entropy = -(m * m.clamp_min(1e-12).log()).sum(-1).mean()
    off_diagonal = (1.0 - m.diagonal()).mean()
    largest = m.masked_fill(torch.eye(m.shape[0], dtype=torch.bool), 0.0).max()
    return {"relation_entropy": float(entropy), "relation_offdiag_mass": float(off_diagonal),
            "relation_max_offdiag": float(largest)}
