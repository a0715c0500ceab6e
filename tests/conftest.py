"""Shared fixtures: deterministic seeds and per-registry construction kwargs."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

import hf_labelsmooth

# The scripts' private helpers (`_hf_data`, `_hf_run`, ...) live beside the scripts, not in the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train_scripts"))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the CPU, and again on CUDA when a GPU is present (``-k cuda`` selects those runs).

    Factories (``torch.randn``, module parameters, ``torch.tensor``) create tensors on the device by default, so a
    test body needs no device argument; random draws take `generator` for the same reason.
    """
    if request.param == "cpu":
        yield "cpu"
        return
    torch.set_default_device(request.param)
    try:
        yield request.param
    finally:
        torch.set_default_device(None)


def generator(seed: int) -> torch.Generator:
    """A seeded generator on the default device (the one the `device` fixture selected)."""
    return torch.Generator(torch.get_default_device()).manual_seed(seed)


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
