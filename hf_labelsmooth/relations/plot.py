"""Heatmaps of class-relation matrices (matplotlib's object API: the user's pyplot backend is left alone)."""
from __future__ import annotations

import io as _bytes_io
import os
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from .._io import atomic_write_bytes, check_output_file
from .constants import PNG_FILE

IMAGE_FORMATS = ("png", "jpg", "jpeg", "svg", "pdf")


def plot_relation_matrix(matrix: Tensor, label_names: Sequence[str] | None = None,
                         path: str | os.PathLike | None = None, title: str = "Class-relation matrix",
                         hide_diagonal: bool = True) -> Any:
    """Draw R as a heatmap (rows: true class, columns: classes the smoothing mass goes to).

    Label names are drawn literally (``$x$`` is not read as math). No pyplot state is touched.

    Args:
        matrix: K×K row-stochastic matrix.
        label_names: Tick labels (shown when K ≤ 50).
        path: Where to save the heatmap (written atomically), as PNG or in the format its suffix names
            (`IMAGE_FORMATS`); None returns the figure without saving.
        title: Figure title.
        hide_diagonal: Blank the diagonal so the off-diagonal structure is visible.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: `path` is a directory or has an unsupported suffix.
        FileNotFoundError: The folder of `path` does not exist.
    """
    fmt = image_format(path) if path is not None else "png"  # bad paths fail before any drawing
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
        atomic_write_bytes(Path(path), figure_bytes(fig, fmt))
    return fig


def image_format(path: str | os.PathLike) -> str:
    """The image format of a heatmap path: its suffix (png without one), after checking the path can be written."""
    path = check_output_file(path, example=PNG_FILE)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"Expected a heatmap file ending in one of {['.' + f for f in IMAGE_FORMATS]} but got "
                         f"{path.name!r}. Use e.g. {path.with_suffix('.png').name!r}.")
    return fmt


def figure_bytes(fig: Any, fmt: str = "png") -> bytes:
    """The figure rendered in `fmt` (``"png"``, ``"jpg"``, ...), at 100 dpi."""
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    return buffer.getvalue()


def heatmap_array(artifact: Any) -> Any:
    """The artifact's heatmap as an H×W×4 float array in [0, 1], for loggers that take images (TensorBoard, W&B);
    None without matplotlib or for an artifact with no heatmap (a top-N table)."""
    try:
        from matplotlib.image import imread
    except ImportError:
        return None
    figure = artifact.plot()
    return None if figure is None else imread(_bytes_io.BytesIO(figure_bytes(figure)), format="png")
