"""Fused soft-target kernels (`kernels/fused_soft.py`) of every registered loss, dense and top-N, against a float64
plain-autograd formula: values, gradients to the logits and to the relation parameters, uneven upstream gradients,
α at 0 and 1, -inf logits on massless classes, underflow, bf16; on the CPU's shortcuts and on the path every other
device runs (`may_sync` off)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from hf_labelsmooth.losses import lls as lls_module
from hf_labelsmooth.losses.kernels import fused_soft
from tests.support.factories import generator, make_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

B, K, TOP_N = 10, 7, 3
TINY = torch.finfo(torch.float32).tiny


def _cases() -> list[tuple[str, int | None]]:
    return [(name, top_n) for name in hf_labelsmooth.list_losses()
            for top_n in ([None, TOP_N] if hf_labelsmooth.get_loss_class(name).supports_top_n else [None])]


def _fixed_alpha(name: str) -> bool:
    """Losses without smoothing (ce, soft_kl): α must be 0."""
    return hf_labelsmooth.get_loss_class(name).default_alpha == 0


def _mixup(seed: int, lam: float = 0.7) -> torch.Tensor:
    y = torch.randint(0, K, (B,), generator=generator(seed))
    y[0] = 1  # a row mixes class 1 with itself (one entry)
    return lam * F.one_hot(y, K).double() + (1 - lam) * F.one_hot(y.flip(0), K).double()


def _loss(name: str, top_n: int | None, alpha: float) -> hf_labelsmooth.RelationLoss:
    options = {"top_n": top_n} if top_n else {}
    if name == "relation_prior":  # column 0 is 0 in every row but one: class 0 gets mass only from class 3
        m = torch.rand(K, K, generator=generator(3)) + 0.1
        m[:, 0] = 0.0
        m[3, 0] = 0.5
        options["matrix"] = m / m.sum(-1, keepdim=True)
    loss = make_loss(name, K, alpha=None if _fixed_alpha(name) else alpha, reduction="none", **options).train()
    with torch.no_grad():
        for p in loss.parameters():
            p.copy_(torch.randn(p.shape, generator=generator(4)) * 2)
        if name == "ols" and top_n is None:
            loss.matrix.copy_(torch.rand(K, K, generator=generator(5)).pow(3).softmax(-1))
    return loss


def _reference(name: str, z: torch.Tensor, t0: torch.Tensor, r: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-sample float64 loss by plain autograd from the dense relation rows R (float64, differentiable)."""
    t = (1 - alpha) * t0 + alpha * t0 @ r
    log_p = z.log_softmax(-1)
    if name == "lspp":  # stop-gradients: the first term trains the network, the second R
        safe = t.clamp_min(TINY).log()
        return (-(t.detach() * log_p).nansum(-1) - (log_p.detach().exp() * safe).sum(-1)) / 2
    if name == "lls":
        log_t = torch.where(t > 0, t.clamp_min(1e-300).log(), torch.log(torch.tensor(TINY, dtype=t.dtype)))
        p = log_p.exp()
        kl_tp = (t * torch.where(t == 0, 0.0, log_t - log_p)).sum(-1)
        kl_pt = (p * torch.where(p == 0, 0.0, log_p - log_t)).sum(-1)
        return (kl_tp + kl_pt) / 2
    ce = -(t * log_p).nansum(-1)
    return ce + torch.special.xlogy(t, t).sum(-1) if name == "soft_kl" else ce


def _check(name: str, top_n: int | None, alpha: float, z: torch.Tensor, t0: torch.Tensor, atol: float) -> None:
    loss = _loss(name, top_n, alpha)
    params = [p for p in loss.parameters()]
    weight = torch.linspace(0.2, 1.7, B)  # uneven upstream gradients
    zl = z.clone().requires_grad_(True)
    value = loss(zl, t0.float())
    (value * weight).sum().backward()
    rows32 = loss.relation_rows(torch.arange(K)) if hasattr(loss, "relation_rows") else loss.relation_matrix()
    r64 = rows32.detach().double().requires_grad_(True)
    z64 = z.double().requires_grad_(True)
    ref = _reference(name, z64, t0, r64, loss.alpha)
    (ref * weight).sum().backward()
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(value), finite)
    assert torch.allclose(value.double()[finite], ref[finite], atol=atol, rtol=1e-4)
    assert zl.grad.dtype == z.dtype and torch.isfinite(zl.grad).all()
    assert torch.allclose(zl.grad.double(), z64.grad, atol=atol, rtol=1e-3)
    if params and r64.grad is not None:  # relation parameters: the float64 dR chained through R's own rows
        expected = torch.autograd.grad(rows32, params, r64.grad.float(), allow_unused=True)
        for p, e in zip(params, expected):
            got = torch.zeros_like(p) if p.grad is None else p.grad
            assert torch.allclose(got, torch.zeros_like(p) if e is None else e, atol=atol, rtol=1e-3), p.shape


@pytest.fixture(params=["cpu-shortcuts", "sync-free"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CPU's shortcuts (gathered rows, a float32 log t check) or the path other devices and compiled graphs run
    (top-N rows in chunks of classes)."""
    if request.param == "sync-free":
        monkeypatch.setattr(fused_soft, "may_sync", lambda x: False)
        monkeypatch.setattr(lls_module, "may_sync", lambda x: False)
        monkeypatch.setattr(fused_soft, "CHUNK_ELEMENTS", 3 * K)  # top-N rows built 3 classes at a time (3 chunks)
    return request.param


@pytest.mark.parametrize("name,top_n", _cases())
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_values_and_gradients(name: str, top_n: int | None, alpha: float, path: str) -> None:
    if _fixed_alpha(name) and alpha > 0:
        pytest.skip("α = 0 only")
    z = torch.randn(B, K, generator=generator(1)) * 3
    _check(name, top_n, alpha, z, _mixup(2), atol=1e-5)


@pytest.mark.parametrize("name,top_n", _cases())
def test_dense_soft_targets_and_underflow(name: str, top_n: int | None, path: str) -> None:
    """Targets with mass on every class (timm's smoothed Mixup) and rows whose softmax underflows (+120 logit)."""
    z = torch.randn(B, K, generator=generator(6)) * 3
    z[: B // 2, 2] += 120.0
    t0 = (_mixup(7) * 0.9 + 0.1 / K)
    _check(name, top_n, 0.0 if _fixed_alpha(name) else 0.2, z, t0, atol=1e-4)


@pytest.mark.parametrize("name,top_n", _cases())
def test_neg_inf_logits_on_massless_classes(name: str, top_n: int | None, path: str) -> None:
    """A -inf logit where the target has no mass is a finite loss with finite gradients (α = 0 for every method;
    also α > 0 for the prior, whose matrix gives class 0 mass only from class 3)."""
    t0 = _mixup(8)
    t0[:, 3] = 0.0
    t0 = t0 / t0.sum(-1, keepdim=True).clamp_min(1e-12)
    t0[t0.sum(-1) == 0, 4] = 1.0
    z = torch.randn(B, K, generator=generator(9)) * 3
    masked = t0 == 0
    z = z.masked_fill(masked, float("-inf"))
    _check(name, top_n, 0.0, z, t0, atol=1e-5)
    if name == "relation_prior":
        z0 = torch.randn(B, K, generator=generator(10))
        z0[:, 0] = float("-inf")
        _check(name, top_n, 0.5, z0, t0, atol=1e-5)


@pytest.mark.parametrize("name,top_n", _cases())
def test_bfloat16_logits(name: str, top_n: int | None, path: str) -> None:
    """bf16 logits: float32 maths on the bf16 values, gradients in bf16 (compared at bf16's precision)."""
    z = (torch.randn(B, K, generator=generator(11)) * 3).bfloat16()
    _check(name, top_n, 0.0 if _fixed_alpha(name) else 0.3, z, _mixup(12), atol=2e-2)


def test_lls_log_target_exact_where_alpha_r_underflows(path: str) -> None:
    """LLS: α·R below float32's normal range (a Q entry ~100 under its row max) keeps an exact log t and gradient."""
    loss = _loss("lls", None, 0.1)
    with torch.no_grad():
        loss.logits[:, 5] -= 100.0
    z, t0 = torch.randn(B, K, generator=generator(13)), _mixup(14)
    zl = z.clone().requires_grad_(True)
    value = loss(zl, t0.float())
    q = loss.logits.detach().double().requires_grad_(True)
    ref = _reference("lls", z.double(), t0, q.softmax(-1), 0.1)
    assert torch.allclose(value.double(), ref, rtol=1e-5, atol=1e-5)
    value.sum().backward()
    ref.sum().backward()
    assert torch.allclose(loss.logits.grad.double(), q.grad, rtol=1e-3, atol=1e-6)
