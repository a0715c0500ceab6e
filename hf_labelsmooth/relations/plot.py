"""Heatmaps of class-relation matrices (matplotlib's object API: the user's pyplot backend is left alone)."""
from __future__ import annotations

import io as _bytes_io
import os
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from .io import atomic_write_bytes


def plot_relation_matrix(matrix: Tensor, label_names: Sequence[str] | None = None,
                         path: str | os.PathLike | None = None, title: str = "Class-relation matrix",
                         hide_diagonal: bool = True) -> Any:
    """Draw R as a heatmap (rows: true class, columns: classes the smoothing mass goes to).

    Label names are drawn literally (``$x$`` is not read as math). No pyplot state is touched.

    Args:
        matrix: K×K row-stochastic matrix.
        label_names: Tick labels (shown when K ≤ 50).
        path: Where to save a PNG (written atomically); None returns the figure without saving.
        title: Figure title.
        hide_diagonal: Blank the diagonal so the off-diagonal structure is visible.

    Returns:
        The matplotlib Figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = matrix.detach().float().cpu().clone()
    if hide_diagonal:
        data.fill_diagonal_(float("nan"))
    k = data.shape[0]
    size = min(4 + 0.25 * k, 14)
    fig = Figure(figsize=(size, size * 0.85))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(data.numpy(), cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if label_names is not None and k <= 50:
        names = [str(n) for n in label_names]
        ax.set_xticks(range(k), names, rotation=90, fontsize=7, parse_math=False)
        ax.set_yticks(range(k), names, fontsize=7, parse_math=False)
    ax.set_xlabel("related class")
    ax.set_ylabel("true class")
    ax.set_title(title, parse_math=False)
    fig.tight_layout()
    if path is not None:
        buffer = _bytes_io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        atomic_write_bytes(Path(path), buffer.getvalue())
    return fig
