"""Bad input gets a clear error before any state changes."""
from __future__ import annotations

import pytest
import torch

import hf_labelsmooth
from conftest import make_loss

K = 4


def _bad_inputs() -> list[tuple[str, torch.Tensor, torch.Tensor, str]]:
    z, y = torch.randn(3, K), torch.tensor([0, 1, 2])
    nan = z.clone()
    nan[1, 2] = float("nan")
    inf = z.clone()
    inf[2, 0] = float("inf")
    return [
        ("label too large", z, torch.tensor([0, 1, K]), r"Expected labels in \[0, 4\) but got values in \[0, 4\]"),
        ("negative label", z, torch.tensor([-1, 1, 2]), r"Expected labels in \[0, 4\)"),
        ("wrong K", torch.randn(3, K + 1), y, r"Expected logits of shape \[batch, num_classes=4\] but got \(3, 5\)"),
        ("soft rows", z, torch.full((3, K), 0.3), "Expected soft targets with non-negative rows summing to 1"),
        ("soft shape", z, torch.full((3, K + 1), 0.2), r"Expected soft targets of shape \(3, 4\)"),
        ("nan", nan, y, r"Expected finite logits but got NaN in batch 0 \(rows \[1\]\)"),
        ("inf", inf, y, r"Expected finite logits but got inf in batch 0 \(rows \[2\]\)"),
        ("label shape", z, torch.tensor([[0, 1, 2]]), r"Expected class ids of shape \(3,\)"),
    ]


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_batch_raises_before_state_changes(name: str, case: tuple) -> None:
    _, z, target, message = case
    loss = make_loss(name, K)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        loss(z, target)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_error_names_the_batch_number() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K)
    loss(torch.randn(2, K), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN in batch 1"):
        loss(torch.full((2, K), float("nan")), torch.tensor([0, 1]))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.1"])
def test_alpha_outside_unit_interval(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"Expected `alpha` in \[0, 1\] but got"):
        hf_labelsmooth.create_loss("ls", num_classes=K, alpha=alpha)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_num_classes_below_two(k: object) -> None:
    with pytest.raises(ValueError, match="Expected `num_classes` to be an integer >= 2 but got"):
        hf_labelsmooth.create_loss("ols", num_classes=k)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="Expected `reduction` in"):
        hf_labelsmooth.create_loss("ls", num_classes=K, reduction="avg")
    with pytest.raises(ValueError, match="Expected `update_every` to be a positive integer"):
        hf_labelsmooth.create_loss("ols", num_classes=K, update_every=0)
    with pytest.raises(ValueError, match="Expected `empty_row` in"):
        hf_labelsmooth.create_loss("ols", num_classes=K, empty_row="zeros")
