"""relation_prior loss: values against a hand-written float64 formula, soft targets, inputs, label-name checks."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_labelsmooth import ClassRelationMatrix, create_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K = 5


def random_matrix(k: int = K) -> torch.Tensor:
    m = torch.rand(k, k) + 0.01
    return m / m.sum(-1, keepdim=True)


def manual_loss(logits: torch.Tensor, labels: list[int], m: torch.Tensor, alpha: float) -> list[float]:
    """Per-sample -Σ_k t_k log p_k with t = (1-α)e_y + α M[y], written out in float64 scalars."""
    out = []
    for row, y in zip(logits.double().tolist(), labels):
        log_z = math.log(sum(math.exp(v) for v in row))
        target = [(1 - alpha) * (k == y) + alpha * float(m[y, k]) for k in range(len(row))]
        out.append(-sum(t * (v - log_z) for t, v in zip(target, row)))
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.35, 1.0])
def test_values_match_manual_formula(alpha):
    m, logits, labels = random_matrix(), torch.randn(8, K) * 2, torch.randint(0, K, (8,))
    expected = manual_loss(logits, labels.tolist(), m, alpha)
    loss = create_loss("relation_prior", num_classes=K, matrix=m, alpha=alpha, reduction="none")
    assert torch.allclose(loss(logits, labels).double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    mean = create_loss("relation_prior", num_classes=K, matrix=m, alpha=alpha)(logits, labels)
    assert math.isclose(float(mean), sum(expected) / 8, rel_tol=1e-5)


def test_alpha_zero_is_cross_entropy_and_default_alpha():
    m, logits, labels = random_matrix(), torch.randn(6, K), torch.randint(0, K, (6,))
    zero = create_loss("relation_prior", num_classes=K, matrix=m, alpha=0.0)
    assert torch.allclose(zero(logits, labels), F.cross_entropy(logits, labels), atol=1e-6)
    default = create_loss("relation_prior", num_classes=K, matrix=m)
    assert default.alpha == 0.1
    assert torch.allclose(default.target_matrix(), 0.9 * torch.eye(K) + 0.1 * m, atol=1e-7)


def test_soft_targets_use_linearity():
    m, logits, alpha = random_matrix(), torch.randn(4, K), 0.3
    soft = torch.softmax(torch.randn(4, K), dim=-1)
    loss = create_loss("relation_prior", num_classes=K, matrix=m, alpha=alpha, reduction="none")
    lam = soft.double()
    target = (1 - alpha) * lam + alpha * lam @ m.double()
    expected = -(target * logits.double().log_softmax(-1)).sum(-1)
    assert torch.allclose(loss(logits, soft).double(), expected, atol=1e-5)


def test_accepts_class_relation_matrix_and_checks_label_names():
    names = ["a", "b", "c", "d", "e"]
    m = random_matrix()
    crm = ClassRelationMatrix(m, names, method="lls")
    loss = create_loss("relation_prior", num_classes=K, matrix=crm, alpha=0.2, label_names=names)
    assert torch.equal(loss.matrix, crm.matrix) and loss.label_names == names
    with pytest.raises(ValueError, match="Expected label names .* but got .*'z'"):
        create_loss("relation_prior", num_classes=K, matrix=crm, label_names=["a", "b", "c", "d", "z"])
    with pytest.raises(ValueError, match="subset"):
        create_loss("relation_prior", num_classes=K, matrix=crm, label_names=["b", "a", "c", "d", "e"])
    sub = crm.subset(["e", "a", "c"])
    sub_loss = create_loss("relation_prior", num_classes=3, matrix=sub, label_names=["e", "a", "c"])
    assert sub_loss.relation_matrix()[1].tolist() == pytest.approx(
        [float(m[0, 4]) / float(m[0, [4, 0, 2]].sum()), float(m[0, 0]) / float(m[0, [4, 0, 2]].sum()),
         float(m[0, 2]) / float(m[0, [4, 0, 2]].sum())], rel=1e-5)


@pytest.mark.parametrize("matrix,message", [
    (None, "Expected a `matrix`"),
    ("not a tensor", "torch.Tensor"),
    (torch.full((4, 4), 0.25), r"shape \(5, 5\)"),
    (torch.full((K, K), 0.3), "rows summing to 1"),
])
def test_bad_matrix_errors(matrix, message):
    with pytest.raises(ValueError, match=message):
        create_loss("relation_prior", num_classes=K, matrix=matrix)


def test_fixed_prior_has_no_parameters_and_gradient_reaches_logits_only():
    m = random_matrix()
    loss = create_loss("relation_prior", num_classes=K, matrix=m.clone().requires_grad_(True))
    assert list(loss.parameters()) == [] and not loss.requires_optimizer and "matrix" in loss.state_dict()
    logits = torch.randn(3, K, requires_grad=True)
    labels = torch.tensor([0, 2, 4])
    loss(logits, labels).backward()
    p = logits.detach().double().softmax(-1)
    target = 0.9 * F.one_hot(labels, K).double() + 0.1 * m.double()[labels]
    assert torch.allclose(logits.grad.double(), (p - target) / 3, atol=1e-6)  # d/dz of mean CE = (p - t) / B


def test_bf16_logits_compute_in_float32():
    m, logits, labels = random_matrix(), torch.randn(4, K), torch.randint(0, K, (4,))
    loss = create_loss("relation_prior", num_classes=K, matrix=m)
    out = loss(logits.bfloat16(), labels)
    assert out.dtype == torch.float32
    assert math.isclose(float(out), sum(manual_loss(logits.bfloat16().float(), labels.tolist(), m, 0.1)) / 4,
                        rel_tol=1e-5)
