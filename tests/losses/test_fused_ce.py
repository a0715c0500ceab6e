"""The fused smoothed cross-entropy behind LS and OLS vs plain autograd formulas in float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from hf_labelsmooth.losses.kernels.fused_ce import smoothed_cross_entropy

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

B, K = 6, 7


def _reference(z: torch.Tensor, y: torch.Tensor, a: float, rows: torch.Tensor | None) -> torch.Tensor:
    k = z.shape[-1]
    rows = torch.full((len(y), k), 1.0 / k, dtype=torch.float64) if rows is None else rows.double()
    t = (1 - a) * F.one_hot(y, k).double() + a * rows
    return -(t * z.double().log_softmax(-1)).sum(-1)


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_value_and_gradient_with_uneven_upstream_gradient(uniform: bool, a: float) -> None:
    torch.manual_seed(0)
    z, y = torch.randn(B, K) * 4, torch.randint(0, K, (B,))
    rows = None if uniform else torch.rand(B, K).softmax(-1)
    weights = torch.rand(B)  # reduction "none" followed by a weighted sum: each row has its own upstream grad
    z64, z32 = z.double().requires_grad_(), z.clone().requires_grad_()
    (_reference(z64, y, a, rows) * weights.double()).sum().backward()
    loss, probs, _ = smoothed_cross_entropy(z32, y, a, rows)
    (loss * weights).sum().backward()
    assert torch.allclose(loss.double(), _reference(z.double(), y, a, rows), atol=1e-5)
    assert torch.allclose(z32.grad.double(), z64.grad, atol=1e-6)
    assert torch.allclose(probs, z.softmax(-1), atol=1e-6)


def test_extreme_logits_stay_finite_when_the_label_probability_underflows() -> None:
    z = torch.tensor([[0.0, 200.0, -300.0], [50.0, -50.0, 0.0]], requires_grad=True)
    y = torch.tensor([2, 1])
    loss, _, _ = smoothed_cross_entropy(z, y, 0.1)
    expected = _reference(z.detach(), y, 0.1, None)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.allclose(loss.double(), expected, rtol=1e-6)
    assert torch.isfinite(z.grad).all()


def test_bfloat16_logits_get_float32_maths_and_a_bfloat16_gradient() -> None:
    torch.manual_seed(1)
    z, y = (torch.randn(B, K) * 3).bfloat16(), torch.randint(0, K, (B,))
    zb, z64 = z.clone().requires_grad_(), z.double().requires_grad_()
    loss, _, _ = smoothed_cross_entropy(zb, y, 0.2)
    loss.sum().backward()
    _reference(z64, y, 0.2, None).sum().backward()
    assert loss.dtype == torch.float32 and zb.grad.dtype == torch.bfloat16
    assert torch.allclose(loss.double(), _reference(z.double(), y, 0.2, None), atol=1e-5)  # same bf16 inputs
    assert torch.allclose(zb.grad.double(), z64.grad, atol=1e-2)


def test_correct_flags_the_label_at_the_row_maximum_ties_included() -> None:
    z = torch.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    _, _, correct = smoothed_cross_entropy(z, torch.tensor([2, 1, 2]), 0.1)
    assert correct.tolist() == [True, False, True]


@pytest.mark.parametrize("name", ["ls", "ols"])
def test_bfloat16_loss_matches_float32_loss_on_the_same_values(name: str) -> None:
    torch.manual_seed(2)
    z, y = (torch.randn(B, K) * 3).bfloat16(), torch.randint(0, K, (B,))
    loss = hf_labelsmooth.create_loss(name, num_classes=K).eval()
    assert torch.allclose(loss(z, y), loss(z.float(), y), atol=1e-6)


def test_ols_update_from_fused_probabilities_equals_update_from_one_hot_targets() -> None:
    torch.manual_seed(3)
    z = torch.randn(64, K) * 3
    y = torch.where(torch.rand(64) < 0.7, z.argmax(-1), torch.randint(0, K, (64,)))
    hard, soft = (hf_labelsmooth.create_loss("ols", num_classes=K).train() for _ in range(2))
    hard(z, y)
    soft(z, F.one_hot(y, K).float())
    assert hard.counts.sum() > 0
    assert torch.equal(hard.counts, soft.counts)
    assert torch.allclose(hard.accumulator, soft.accumulator, atol=1e-6)
    hard.eval()(z, y)  # eval mode keeps no batch statistics
    assert hard._seen is None
