"""Each loss against SPEC.md formulas computed by hand in float64, values and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from tests.support.factories import generator

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

B, K = 6, 5


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    return torch.randn(B, K, generator=g, dtype=torch.float64) * 2, torch.randint(0, K, (B,), generator=g)


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.float().clone().requires_grad_(True)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_ls_equals_torch_label_smoothing(alpha: float) -> None:
    z, y = _batch()
    loss = hf_labelsmooth.create_loss("ls", num_classes=K, alpha=alpha)
    expected = F.cross_entropy(z, y, label_smoothing=alpha)
    manual = -(((1 - alpha) * F.one_hot(y, K) + alpha / K) * z.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(loss(z.float(), y).double(), expected, atol=1e-6)
    assert torch.allclose(expected, manual, atol=1e-12)


def test_ce_is_plain_cross_entropy_and_rejects_alpha() -> None:
    z, y = _batch()
    assert torch.allclose(hf_labelsmooth.create_loss("ce", num_classes=K)(z.float(), y).double(), F.cross_entropy(z, y),
                          atol=1e-6)
    with pytest.raises(ValueError, match="Expected `alpha` = 0"):
        hf_labelsmooth.create_loss("ce", num_classes=K, alpha=0.1)


def test_ols_value_and_gradient_with_given_matrix() -> None:
    z, y = _batch()
    loss = hf_labelsmooth.create_loss("ols", num_classes=K).eval()
    s = torch.softmax(torch.randn(K, K, dtype=torch.float64), -1)
    loss.matrix.copy_(s)
    p, log_p = z.softmax(-1), z.log_softmax(-1)
    e = F.one_hot(y, K).double()
    expected = (0.5 * -(e * log_p).sum(-1) + 0.5 * -(s[y] * log_p).sum(-1)).mean()
    expected_grad = (0.5 * (p - e) + 0.5 * (p - s[y])) / B
    zl = _leaf(z)
    value = loss(zl, y)
    value.backward()
    assert torch.allclose(value.double(), expected, atol=1e-6)
    assert torch.allclose(zl.grad.double(), expected_grad, atol=1e-6)


def _lspp_rows(c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows = []
    for i, cls in enumerate(y.tolist()):
        ex = torch.exp(c[cls]).clone()
        ex[cls] = 0.0
        rows.append(ex / ex.sum())
    return torch.stack(rows)


def test_lspp_value_and_which_parameter_gets_which_gradient() -> None:
    z, y = _batch()
    alpha = 0.2
    c = torch.randn(K, K, dtype=torch.float64)
    loss = hf_labelsmooth.create_loss("lspp", num_classes=K, alpha=alpha)
    with torch.no_grad():
        loss.logits.copy_(c)
    p, log_p, e = z.softmax(-1), z.log_softmax(-1), F.one_hot(y, K).double()
    r = _lspp_rows(c, y)
    t = (1 - alpha) * e + alpha * r
    log_t = torch.where(t > 0, t.log(), torch.zeros_like(t))
    expected = ((-(t * log_p).sum(-1) - (p * log_t).sum(-1)) / 2).mean()
    grad_z = (p - t) / 2 / B  # network: only H(sg(t), p)
    per_row = -(p - r * (1 - p.gather(1, y[:, None]))) / 2 / B  # C: only H(sg(p), t); d log r_k / dC_j
    per_row.scatter_(1, y[:, None], 0.0)
    grad_c = torch.zeros(K, K, dtype=torch.float64).index_add_(0, y, per_row)
    zl = _leaf(z)
    value = loss(zl, y)
    value.backward()
    assert torch.allclose(value.double(), expected, atol=1e-5)
    assert torch.allclose(zl.grad.double(), grad_z, atol=1e-6)
    assert torch.allclose(loss.logits.grad.double(), grad_c, atol=1e-6)
    assert torch.all(loss.logits.grad.diagonal() == 0)


def test_lspp_target_class_probability_is_exactly_one_minus_alpha() -> None:
    loss = hf_labelsmooth.create_loss("lspp", num_classes=K, alpha=0.1)
    with torch.no_grad():
        loss.logits.normal_()
    r = loss.relation_matrix()
    assert torch.all(r.diagonal() == 0)
    assert torch.allclose(r.sum(-1), torch.ones(K))
    assert torch.allclose(loss.target_matrix().diagonal(), torch.full((K,), 0.9))


def test_lls_value_and_gradients_to_network_and_matrix() -> None:
    z, y = _batch()
    alpha = 0.3
    q = torch.randn(K, K, dtype=torch.float64)
    loss = hf_labelsmooth.create_loss("lls", num_classes=K, alpha=alpha)
    with torch.no_grad():
        loss.logits.copy_(q)
    p, log_p, e = z.softmax(-1), z.log_softmax(-1), F.one_hot(y, K).double()
    s = q.softmax(-1)[y]
    t = (1 - alpha) * e + alpha * s
    d = log_p - t.log()
    kl_pt = (p * d).sum(-1, keepdim=True)
    expected = (((t * -d).sum(-1) + kl_pt[:, 0]) / 2).mean()
    grad_z = ((p - t) + p * (d - kl_pt)) / 2 / B
    g = ((t.log() + 1) - log_p - p / t) / 2 / B  # dL/dt
    per_row = alpha * s * (g - (g * s).sum(-1, keepdim=True))
    grad_q = torch.zeros(K, K, dtype=torch.float64).index_add_(0, y, per_row)
    zl = _leaf(z)
    value = loss(zl, y)
    value.backward()
    assert torch.allclose(value.double(), expected, atol=1e-5)
    assert torch.allclose(zl.grad.double(), grad_z, atol=1e-6)
    assert torch.allclose(loss.logits.grad.double(), grad_q, atol=1e-6)


@pytest.mark.parametrize("name", ["lspp", "lls"])
def test_soft_targets_smooth_by_linearity(name: str) -> None:
    z, _ = _batch()
    t = torch.softmax(torch.randn(B, K) * 3, -1)
    loss = hf_labelsmooth.create_loss(name, num_classes=K, alpha=0.2)
    with torch.no_grad():
        loss.logits.normal_()
    r = loss.relation_matrix()
    mixed = 0.8 * t + 0.2 * t @ r
    log_p, p = z.float().log_softmax(-1), z.float().softmax(-1)
    if name == "lspp":
        expected = ((-(mixed * log_p).sum(-1) - (p * mixed.log()).sum(-1)) / 2).mean()
    else:
        expected = (((mixed * (mixed.log() - log_p)).sum(-1) + (p * (log_p - mixed.log())).sum(-1)) / 2).mean()
    assert torch.allclose(loss(z.float(), t), expected, atol=1e-5)


def test_ols_soft_targets_use_t_and_t_at_s() -> None:
    z, _ = _batch()
    t = torch.softmax(torch.randn(B, K) * 3, -1)
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, alpha=0.3).eval()
    s = torch.softmax(torch.randn(K, K), -1)
    loss.matrix.copy_(s)
    log_p = z.float().log_softmax(-1)
    expected = (0.7 * -(t * log_p).sum(-1) + 0.3 * -((t @ s) * log_p).sum(-1)).mean()  # alpha: mass off the target
    assert torch.allclose(loss(z.float(), t), expected, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.9])
def test_ols_alpha_is_the_mass_moved_off_the_one_hot(alpha: float) -> None:
    """SPEC "One meaning of alpha": a fresh OLS (S uniform) is label smoothing with ε = alpha, not 1 - alpha."""
    z, y = _batch()
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, alpha=alpha).eval()
    expected = torch.nn.functional.cross_entropy(z.float(), y, label_smoothing=alpha)
    assert torch.allclose(loss(z.float(), y), expected, atol=1e-5)
    s = torch.softmax(torch.randn(K, K), -1)
    loss.matrix.copy_(s)
    assert torch.allclose(loss.target_matrix(), (1 - alpha) * torch.eye(K) + alpha * s, atol=1e-6)
    target = loss.target_matrix()[y]
    assert torch.allclose(loss(z.float(), y), -(target * z.float().log_softmax(-1)).sum(-1).mean(), atol=1e-5)
