"""`LaunchResult`: what a launch leaves (apart from `launcher` and `hooks`, which both name it: no import cycle)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

__all__ = ["LaunchResult"]


@dataclass
class LaunchResult:
    """What a launch leaves: the task train.py trained (None without a relation loss) and where the matrix went."""

    task: nn.Module | None
    output_dir: str | None
    relations_dir: Path | None
    world_size: int
    rank: int
