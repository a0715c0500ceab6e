"""Heatmaps of class-relation matrices (matplotlib, headless)."""
from __future__ import annotations

import os
from typing import Sequence

from torch import Tensor


def plot_relation_matrix(matrix: Tensor, label_names: Sequence[str] | None = None,
                         path: str | os.PathLike | None = None, title: str = "Class-relation matrix",
                         hide_diagonal: bool = True):
    """Draw R as a heatmap (rows: true class, columns: classes the smoothing mass goes to).

    Args:
        matrix: K×K row-stochastic matrix.
        label_names: Tick labels (shown when K ≤ 50).
        path: Where to save a PNG (written atomically); None returns the figure without saving.
        title: Figure title.
        hide_diagonal: Blank the diagonal so the off-diagonal structure is visible.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    data = matrix.detach().float().cpu().clone()
    if hide_diagonal:
        data.fill_diagonal_(float("nan"))
    k = data.shape[0]
    size = min(4 + 0.25 * k, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(data.numpy(), cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if label_names is not None and k <= 50:
        ax.set_xticks(range(k), list(label_names), rotation=90, fontsize=7)
        ax.set_yticks(range(k), list(label_names), fontsize=7)
    ax.set_xlabel("related class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        tmp = f"{os.fspath(path)}.tmp.png"
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
        plt.close(fig)
    return fig
