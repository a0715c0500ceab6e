"""Fused LLS paths (`_fused_lls`) against an independent float64 autograd reference: values and gradients."""
from __future__ import annotations

import math

import pytest
import torch

from hf_labelsmooth import create_loss
from hf_labelsmooth.losses.kernels.wrong_class import most_probable_wrong
from tests.support.factories import generator

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

B, K = 12, 9
TINY = torch.finfo(torch.float32).tiny


def _reference(z: torch.Tensor, labels: torch.Tensor, log_r: torch.Tensor, alpha: float) -> torch.Tensor:
    """½ Σ (t - p)(log t - log p) in float64 from dense log R[y] rows; log t clamped at log(tiny) like `safe_log`."""
    t = (1 - alpha) * torch.nn.functional.one_hot(labels, z.shape[1]).double() + alpha * log_r.exp()
    log_p = z.double().log_softmax(dim=-1)
    return ((t - log_p.exp()) * (t.clamp_min(TINY).log() - log_p)).sum(dim=-1) / 2


def _dense_log_rows(q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return q[labels].log_softmax(dim=-1)


def _sparse_log_rows(loss: torch.nn.Module, slot_logits: torch.Tensor, tail_logits: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """Dense float64 log R[y]: softmax over the slots and n_tail copies of the tail logit, placed at the slots."""
    s, tail, n_tail = slot_logits[labels], tail_logits[labels], loss.rows.n_tail
    extra = tail[:, None] + math.log(n_tail) if n_tail else s[:, :0]
    norm = torch.cat([s, extra], dim=1).logsumexp(dim=-1, keepdim=True)
    rows = (tail[:, None] - norm).expand(-1, loss.num_classes) if n_tail else s.new_full(
        (len(labels), loss.num_classes), -math.inf)
    return rows.scatter(1, loss.slots[labels], s - norm)


def _logits(seed: int, dtype: torch.dtype = torch.float32, confident: bool = False) -> torch.Tensor:
    g = generator(seed)
    z = torch.randn(B, K, generator=g) * 3
    if confident:  # exp(-120) underflows in float32: p_k = 0 for most classes of these rows
        z[: B // 2, 0] += 120.0
    return z.to(dtype)


def _labels(seed: int) -> torch.Tensor:
    labels = torch.randint(0, K, (B,), generator=generator(seed + 1))
    labels[:3] = 0  # the confident class is the label for some rows, not for others
    return labels


def _check(loss: torch.nn.Module, params: list[torch.Tensor], log_rows, z: torch.Tensor, labels: torch.Tensor,
           alpha: float, reduction: str, atol: float) -> None:
    """Compare value and gradients (upstream: a non-uniform weight per sample) with the float64 reference."""
    weight = torch.linspace(0.2, 1.7, B)
    zl = z.clone().requires_grad_(True)
    value = loss(zl, labels)
    (value * weight if reduction == "none" else value).sum().backward()
    zr = z.double().requires_grad_(True)
    ref_params = [p.detach().double().requires_grad_(True) for p in params]
    ref = _reference(zr, labels, log_rows(*ref_params), alpha)
    ref = ref if reduction == "none" else ref.mean()
    (ref * weight if reduction == "none" else ref).sum().backward()
    assert torch.allclose(value.double(), ref, atol=atol, rtol=1e-5)
    assert zl.grad.dtype == z.dtype and torch.isfinite(zl.grad).all()
    assert torch.allclose(zl.grad.double(), zr.grad, atol=atol, rtol=1e-3)
    for p, r in zip(params, ref_params):  # no tail (N = K): `tail_logits` gets no gradient, as in the reference
        assert (p.grad is None) == (r.grad is None)
        assert p.grad is None or torch.allclose(p.grad.double(), r.grad, atol=atol, rtol=1e-3)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.4, 1.0])
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("confident", [False, True])
def test_dense_values_and_gradients(alpha: float, reduction: str, confident: bool) -> None:
    loss = create_loss("lls", K, alpha=alpha, reduction=reduction).train()
    with torch.no_grad():
        loss.logits.copy_(torch.randn(K, K, generator=generator(3)) * 2)
    _check(loss, [loss.logits], lambda q: _dense_log_rows(q, _labels(0)), _logits(0, confident=confident), _labels(0),
           alpha, reduction, atol=2e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.4, 1.0])
@pytest.mark.parametrize("top_n", [K, 4, 1])
@pytest.mark.parametrize("confident", [False, True])
def test_sparse_values_and_gradients(alpha: float, top_n: int, confident: bool) -> None:
    loss = create_loss("lls", K, alpha=alpha, top_n=top_n, reduction="none").train()
    g = generator(4)
    with torch.no_grad():
        loss.logits.copy_(torch.randn(K, top_n, generator=g) * 2)
        loss.tail_logits.copy_(torch.randn(K, generator=g))
    labels = _labels(1)
    _check(loss, [loss.logits, loss.tail_logits], lambda s, t: _sparse_log_rows(loss, s, t, labels),
           _logits(1, confident=confident), labels, alpha, "none", atol=2e-5)


@pytest.mark.parametrize("top_n", [None, 4])
def test_bfloat16_logits_give_bfloat16_gradients(top_n: int | None) -> None:
    extra = {"top_n": top_n} if top_n else {}
    loss = create_loss("lls", K, alpha=0.3, **extra).train()
    with torch.no_grad():
        loss.logits.normal_(generator=generator(5))
    params = [loss.logits] + ([loss.tail_logits] if top_n else [])
    labels = _labels(2)
    rows = (lambda q: _dense_log_rows(q, labels)) if top_n is None else \
        (lambda s, t: _sparse_log_rows(loss, s, t, labels))
    _check(loss, params, rows, _logits(2, torch.bfloat16), labels, 0.3, "mean", atol=1e-2)


@pytest.mark.parametrize("top_n", [None, 4])
def test_retained_graph_gives_the_same_gradients_twice(top_n: int | None) -> None:
    extra = {"top_n": top_n} if top_n else {}
    loss = create_loss("lls", K, **extra).train()
    z = _logits(6).requires_grad_(True)
    value = loss(z, _labels(6))
    value.backward(retain_graph=True)
    first = [z.grad.clone(), loss.logits.grad.clone()]
    value.backward()
    assert torch.allclose(z.grad, 2 * first[0]) and torch.allclose(loss.logits.grad, 2 * first[1])


def test_eval_and_train_values_agree_and_sparse_training_records_confusions() -> None:
    loss = create_loss("lls", K, top_n=3)
    twin = create_loss("lls", K, top_n=3)
    z, labels = _logits(7), _labels(7)
    assert torch.allclose(loss.eval()(z, labels), loss.train()(z, labels), atol=1e-6)
    twin.rows.observe_confusions(z.float(), labels)  # the generic scan of the logits
    assert torch.equal(loss.candidate_index, twin.candidate_index)
    assert torch.allclose(loss.candidate_score, twin.candidate_score, atol=1e-6)


@pytest.mark.parametrize("num_classes", [50, 2048 + 37, 4096])
def test_wrong_class_search_equals_a_masked_max(num_classes: int) -> None:
    g = generator(num_classes)
    p = torch.randn(16, num_classes, generator=g).mul(4).softmax(dim=-1)
    labels = torch.randint(0, num_classes, (16,), generator=g)
    labels[0], p[1, -3:] = p[0].argmax(), 0.5  # label at the maximum; the maximum in the last, partial block
    before = p.clone()
    score, wrong = most_probable_wrong(p, labels)
    masked = before.scatter(1, labels[:, None], -1.0)
    assert torch.equal(p, before) and torch.equal(score, masked.amax(dim=-1))
    assert torch.equal(masked.gather(1, wrong[:, None])[:, 0], score) and bool((wrong != labels).all())
