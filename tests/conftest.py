"""Shared fixtures: the device every loss test runs on, and a deterministic seed (helpers: `tests.support`)."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the CPU, and again on CUDA when a GPU is present (``-k cuda`` selects those runs).

    Factories (``torch.randn``, module parameters, ``torch.tensor``) create tensors on the device by default, so a
    test body needs no device argument; random draws take `tests.support.factories.generator` for the same reason.
    """
    if request.param == "cpu":
        yield "cpu"
        return
    torch.set_default_device(request.param)
    try:
        yield request.param
    finally:
        torch.set_default_device(None)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
