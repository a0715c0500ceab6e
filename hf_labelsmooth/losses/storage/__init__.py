"""Row storage: the relation rows a loss holds, dense K×K or top-N per row, as one object (`loss.rows`).

A loss picks its storage once, in its constructor (``top_n=None``: dense), and then calls the same operations on
either: its rows for a batch's classes, its statistics, its swap or refresh, its matrix and top entries. A storage
registers its tensors on the loss (buffers, parameters, `add_state` states) under release 0.1.0's names, so state
dicts, checkpoints, optimizer groups and cross-process reductions are those of the loss.

- `averages`: OLS's averaged predictions, `DenseAverages` / `TopNAverages` (`AveragedRows`).
- `logits`: learnable relation logits (LS++, LLS), `DenseLogits` / `TopNLogits` (`LogitRows`); a method passes
  its fused class-id kernels (a `kernels/` module, `HardLabelKernels`) and the storage calls the one it fits.
"""
from __future__ import annotations

from .averages import AveragedRows, DenseAverages
from .logits import DenseLogits, HardLabelKernels, LogitRows
from .top_averages import TopNAverages
from .top_logits import TopNLogits

__all__ = ["AveragedRows", "DenseAverages", "DenseLogits", "HardLabelKernels", "LogitRows", "TopNAverages",
           "TopNLogits"]
