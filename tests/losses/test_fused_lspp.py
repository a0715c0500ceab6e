"""Fused LS++ paths for class ids (`_fused_lspp`): values and gradients against a float64 autograd reference."""
from __future__ import annotations

import math

import pytest
import torch

from hf_labelsmooth import create_loss
from tests.support.factories import generator

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K, B = 9, 12
LOG_TINY = math.log(torch.finfo(torch.float32).tiny)


def _reference(z: torch.Tensor, log_r: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-sample (H(sg(t), p) + H(sg(p), t)) / 2 in float64 from log R[y] rows (-inf at y), plain autograd."""
    own = torch.nn.functional.one_hot(y, z.shape[1]).bool()
    log_t_y = max(LOG_TINY, math.log(1 - alpha)) if alpha < 1 else LOG_TINY
    if alpha > 0:
        log_t = torch.where(own, log_t_y, (log_r + math.log(alpha)).clamp_min(LOG_TINY))
    else:
        log_t = torch.where(own, log_t_y, torch.full_like(log_r, LOG_TINY))
    t = torch.where(own, 1 - alpha, alpha * log_r.exp())
    log_p = z.log_softmax(-1)
    return (-(t.detach() * log_p).sum(-1) - (log_p.exp().detach() * log_t).sum(-1)) / 2


def _dense_log_r(c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    own = torch.nn.functional.one_hot(y, c.shape[1]).bool()
    return c[y].masked_fill(own, float("-inf")).log_softmax(-1)


def _sparse_log_r(loss: torch.nn.Module, slot_logits: torch.Tensor, tail: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor:
    """log R[y] of a sparse loss, materialised: slot logits at the slots, the tail logit elsewhere, -inf at y."""
    rows = tail[y][:, None].expand(len(y), loss.num_classes).scatter(1, loss.slots[y], slot_logits[y])
    return rows.scatter(1, y[:, None], float("-inf")).log_softmax(-1)


def _grad(t: torch.Tensor) -> torch.Tensor:
    """Gradient of a float64 reference leaf (zeros where the loss does not depend on it, e.g. C at α = 0)."""
    return torch.zeros_like(t) if t.grad is None else t.grad


def _data(seed: int, dtype: torch.dtype = torch.float32, scale: float = 2.0):
    g = generator(seed)
    z = (torch.randn(B, K, generator=g, dtype=torch.float64) * scale).to(dtype)
    return z, torch.randint(0, K, (B,), generator=g), torch.rand(B, generator=g, dtype=torch.float64) + 0.5


def _run(loss: torch.nn.Module, z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor):
    """Loss value and gradients of the module; 'none' is reduced with non-uniform weights, 'mean' as is."""
    zl = z.clone().requires_grad_(True)
    value = loss(zl, y)
    (value if value.ndim == 0 else (value.double() * weights).sum()).backward()
    return value, zl.grad


def _run_reference(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, reduction: str, alpha: float, log_r_fn):
    z64 = z.double().requires_grad_(True)
    per_sample = _reference(z64, log_r_fn(), y, alpha)
    value = per_sample.mean() if reduction == "mean" else per_sample
    (value if value.ndim == 0 else (value * weights).sum()).backward()
    return value.detach(), z64.grad


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.4, 1.0])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_dense_matches_float64_reference(alpha: float, reduction: str) -> None:
    z, y, w = _data(0)
    loss = create_loss("lspp", K, alpha=alpha, reduction=reduction)
    with torch.no_grad():
        loss.logits.normal_(0, 1.5)
    c64 = loss.logits.detach().double().requires_grad_(True)
    value, grad_z = _run(loss, z, y, w)
    ref_value, ref_grad_z = _run_reference(z, y, w, reduction, alpha, lambda: _dense_log_r(c64, y))
    torch.testing.assert_close(value.double(), ref_value, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_z.double(), ref_grad_z, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss.logits.grad.double(), _grad(c64), atol=1e-6, rtol=1e-5)
    assert torch.all(loss.logits.grad.diagonal() == 0)


def test_dense_gradients_follow_the_stop_gradient_formulas() -> None:
    """z gets only (p - t)/2 (nothing from the matrix term), C only -(p - r(1 - p_y))/2 (nothing from the network)."""
    z, y, w = _data(1)
    alpha = 0.3
    loss = create_loss("lspp", K, alpha=alpha, reduction="none")
    with torch.no_grad():
        loss.logits.normal_()
    _, grad_z = _run(loss, z, y, w)
    p, r = z.double().softmax(-1), _dense_log_r(loss.logits.detach().double(), y).exp()
    t = (1 - alpha) * torch.nn.functional.one_hot(y, K).double() + alpha * r
    torch.testing.assert_close(grad_z.double(), w[:, None] * (p - t) / 2, atol=1e-6, rtol=1e-5)
    rows = -w[:, None] * (p - r * (1 - p.gather(1, y[:, None]))) / 2
    rows.scatter_(1, y[:, None], 0.0)
    expected = torch.zeros(K, K, dtype=torch.float64).index_add_(0, y, rows)
    torch.testing.assert_close(loss.logits.grad.double(), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", ["clamped_rows", "tiny_target_probability"])
def test_dense_extreme_values_take_the_exact_paths(case: str) -> None:
    """Rows of C spread past log(tiny) (the clamp stops C's gradient there) and p_y below 1e-30 (lse fallback)."""
    z, y, w = _data(2)
    loss = create_loss("lspp", K, alpha=0.1, reduction="none")
    with torch.no_grad():
        loss.logits.normal_()
        if case == "clamped_rows":
            loss.logits[:, :3] -= 120.0
        else:
            z.scatter_(1, y[:, None], -90.0)
    c64 = loss.logits.detach().double().requires_grad_(True)
    value, grad_z = _run(loss, z, y, w)
    ref_value, ref_grad_z = _run_reference(z, y, w, "none", 0.1, lambda: _dense_log_r(c64, y))
    torch.testing.assert_close(value.double(), ref_value, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(grad_z.double(), ref_grad_z, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss.logits.grad.double(), _grad(c64), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.4, 1.0])
@pytest.mark.parametrize("top_n", [K - 1, 3, 1])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_sparse_matches_float64_reference(alpha: float, top_n: int, reduction: str) -> None:
    z, y, w = _data(3)
    loss = create_loss("lspp", K, alpha=alpha, top_n=top_n, reduction=reduction)
    with torch.no_grad():
        loss.logits.normal_(0, 1.5), loss.tail_logits.normal_()
    s64, t64 = (p.detach().double().requires_grad_(True) for p in (loss.logits, loss.tail_logits))
    value, grad_z = _run(loss, z, y, w)
    ref_value, ref_grad_z = _run_reference(z, y, w, reduction, alpha, lambda: _sparse_log_r(loss, s64, t64, y))
    torch.testing.assert_close(value.double(), ref_value, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_z.double(), ref_grad_z, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss.logits.grad.double(), _grad(s64), atol=1e-6, rtol=1e-5)
    expected_tail = _grad(t64)
    grad_tail = loss.tail_logits.grad
    torch.testing.assert_close(torch.zeros_like(expected_tail) if grad_tail is None else grad_tail.double(),
                               expected_tail, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("top_n", [None, 3])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_other_logit_dtypes_compute_in_float32_and_return_their_dtype(top_n: int | None, dtype: torch.dtype) -> None:
    z, y, w = _data(4, dtype)
    loss = create_loss("lspp", K, alpha=0.2, top_n=top_n, reduction="none")
    with torch.no_grad():
        loss.logits.normal_()
    c64 = loss.logits.detach().double().requires_grad_(True)
    t64 = None if top_n is None else loss.tail_logits.detach().double().requires_grad_(True)
    log_r = (lambda: _dense_log_r(c64, y)) if top_n is None else (lambda: _sparse_log_r(loss, c64, t64, y))
    value, grad_z = _run(loss, z, y, w)
    ref_value, ref_grad_z = _run_reference(z, y, w, "none", 0.2, log_r)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    assert value.dtype == torch.float32 and grad_z.dtype == dtype
    torch.testing.assert_close(value.double(), ref_value, atol=tol, rtol=tol)
    torch.testing.assert_close(grad_z.double(), ref_grad_z, atol=tol, rtol=tol)
    torch.testing.assert_close(loss.logits.grad.double(), _grad(c64), atol=tol / 10, rtol=tol)


def test_a_second_backward_through_the_same_graph_raises() -> None:
    """Backward reuses the saved probabilities in place: autograd must refuse a retained second pass."""
    z, y, _ = _data(5)
    loss = create_loss("lspp", K)
    value = loss(z.requires_grad_(True), y)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        value.backward()


def test_no_grad_forward_equals_training_forward() -> None:
    z, y, _ = _data(6)
    loss = create_loss("lspp", K, reduction="none")
    with torch.no_grad():
        loss.logits.normal_()
        frozen = loss(z, y)
    torch.testing.assert_close(frozen, loss(z.clone().requires_grad_(True), y).detach())
