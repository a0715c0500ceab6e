"""Shared fixtures: deterministic seeds and per-registry construction kwargs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import hf_labelsmooth

# The scripts' private helpers (`_hf_data`, `_hf_run`, ...) live beside the scripts, not in the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train_scripts"))


def loss_kwargs(name: str, num_classes: int) -> dict:
    """Extra constructor kwargs that some registered losses require."""
    if name == "relation_prior":
        return {"matrix": torch.softmax(torch.randn(num_classes, num_classes), dim=-1)}
    return {}


def make_loss(name: str, num_classes: int, **kwargs) -> hf_labelsmooth.RelationLoss:
    return hf_labelsmooth.create_loss(name, num_classes=num_classes, **{**loss_kwargs(name, num_classes), **kwargs})


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
