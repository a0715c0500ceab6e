"""Shared pieces of the real-data fidelity studies (fidelity_text.py, fidelity_audio.py): scores, matrix statistics,
a per-run result cache (a rerun skips finished runs) and table formatting."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from hf_labelsmooth import create_loss
from hf_labelsmooth.losses.base import RelationLoss
from hf_labelsmooth.metrics.functional import expected_calibration_error, relation_stats
from hf_labelsmooth._io import atomic_write_bytes


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL (nats) and ECE (15 bins) of logits [N, K] against labels [N]."""
    logits, labels = logits.float(), labels.long()
    probs = logits.softmax(-1)
    return {"accuracy": float((probs.argmax(-1) == labels).float().mean()),
            "nll": float(F.cross_entropy(logits, labels)), "ece": expected_calibration_error(probs, labels)}


def matrix_facts(loss: RelationLoss) -> dict[str, Any]:
    """max |R − R₀| (R₀: the matrix of a fresh loss of the same kind: uniform rows), entropy, off-diagonal mass,
    the number of exactly uniform rows, and R itself (a nested list)."""
    matrix = loss.relation_matrix().detach().float().cpu()
    start = create_loss(loss.name, num_classes=loss.num_classes).relation_matrix().detach().float().cpu()
    deviation = (matrix - start).abs()
    return {"max_dev": float(deviation.max()), **relation_stats(matrix),
            "uniform_rows": int((deviation.amax(-1) < 1e-6).sum()), "matrix": matrix.tolist()}


def related(matrix: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Top-n off-diagonal classes of each row [K, n]; ties broken at random (a uniform row gives random classes)."""
    k = matrix.shape[0]
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    off = matrix.float().clone().fill_diagonal_(-1.0)[:, perm]
    return perm[off.topk(n, dim=-1).indices]


def mean_std(values: Iterable[float], scale: float = 1.0, digits: int = 2) -> str:
    """'mean ± std' of `values` × `scale` (std 0 for one value)."""
    vals = [scale * v for v in values]
    if not vals:
        return "–"
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {std:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


class RunCache:
    """One JSON file per finished run in `folder`; `get` returns a stored result, `put` stores one atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / (key.replace("/", "_") + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, key: str, result: dict[str, Any]) -> None:
        atomic_write_bytes(self._path(key), json.dumps(result).encode())


def fmt_lr(lr: float | None) -> str:
    """A learning rate for a table ('default' for None)."""
    return "default" if lr is None else f"{lr:g}"


def command_line(script: str, argv: list[str]) -> str:
    """`python benchmarks/<script> ...` for a results file, without the free-text ``--note`` / ``--w2v-note`` and
    ``--cached-only`` (a report rewritten from finished runs)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg in ("--note", "--w2v-note"):
            skip = not skip
            continue
        if arg != "--cached-only":
            kept.append(arg)
    return f"`python benchmarks/{script} " + " ".join(kept) + "`"
