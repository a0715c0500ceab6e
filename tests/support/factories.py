"""Seeded generators and registered losses built the way the loss tests need them (on the `device` fixture's device)."""
from __future__ import annotations

import torch

import hf_labelsmooth


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
