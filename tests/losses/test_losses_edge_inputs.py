"""Edge inputs real loaders produce, for every registered loss (dense and ``top_n``, hard and Mixup targets)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from tests.support.loss_cases import K, LossCase, global_batches, loss_cases, make_case_loss, make_targets

CASES = loss_cases()


def _twins(case: LossCase, **kwargs) -> tuple[hf_labelsmooth.RelationLoss, hf_labelsmooth.RelationLoss]:
    """Two copies of the case's loss holding the same non-trivial state (random relation logits, one batch seen)."""
    loss = make_case_loss(case, **kwargs)
    with torch.no_grad():
        for param in loss.parameters():
            param.normal_()
    logits, target = global_batches(case)[0]
    loss(logits, target)
    twin = make_case_loss(case, **kwargs)
    twin.load_state_dict(loss.state_dict())
    return loss, twin


def _state(loss: hf_labelsmooth.RelationLoss) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in loss.state_dict().items()}


def _assert_states_equal(a: hf_labelsmooth.RelationLoss, b: hf_labelsmooth.RelationLoss) -> None:
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_empty_batch_is_zero_with_zero_gradients_and_adds_no_statistics(case: LossCase, reduction: str) -> None:
    """B = 0 (the last shard of a sampler): like F.cross_entropy ("sum" 0, "none" empty) and 0 for "mean" (torch
    gives NaN); parameters get zero gradients (they stay in the graph, as DDP requires); only batch counters move."""
    loss, _ = _twins(case, reduction=reduction)
    before = _state(loss)
    logits = torch.zeros(0, K, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long) if case.targets == "hard" else torch.zeros(0, K)
    value = loss(logits, target)
    expected = F.cross_entropy(logits, torch.zeros(0, dtype=torch.long), reduction=reduction).nan_to_num(0.0)
    assert value.shape == expected.shape and torch.equal(value.detach(), expected.detach())
    value.sum().backward()
    assert logits.grad.shape == (0, K)
    for name, param in loss.named_parameters():
        assert param.grad is not None and not param.grad.any(), name
    for key, value in loss.state_dict().items():
        step = 1 if key.endswith("steps") else 0  # OLS `steps`, sparse `refresh_steps`: the batch counts in a period
        assert torch.equal(value, before[key] + step), key


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_float64_logits_compute_in_float32(case: LossCase) -> None:
    loss, twin = _twins(case)
    logits, target = global_batches(case)[1]
    z64, z32 = logits.double().requires_grad_(True), logits.clone().requires_grad_(True)
    value = loss(z64, target)
    reference = twin(z32, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference)
    value.backward(), reference.backward()
    assert z64.grad.dtype == torch.float64
    torch.testing.assert_close(z64.grad.float(), z32.grad)
    _assert_states_equal(loss, twin)


def _unsmoothed_targets(case: LossCase, labels: torch.Tensor) -> torch.Tensor:
    return make_targets(case.targets, labels, torch.Generator().manual_seed(0), smoothing=0.0)


def _masked_check(loss: hf_labelsmooth.RelationLoss, logits: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor) -> None:
    """-inf on `mask` (classes without target mass) gives the value and gradients of a logit so low that p = 0."""
    z_inf = logits.masked_fill(mask, float("-inf")).requires_grad_(True)
    z_low = logits.masked_fill(mask, -1e4).requires_grad_(True)
    value, reference = loss(z_inf, target), loss(z_low, target)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, reference)
    grad, = torch.autograd.grad(value, z_inf)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, torch.autograd.grad(reference, z_low)[0])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_neg_inf_logits_on_classes_without_target_mass(case: LossCase) -> None:
    """alpha = 0: the target is the (mixed) one-hot, so every other class may be masked with -inf."""
    loss = make_case_loss(case, alpha=0.0).eval()
    labels = torch.tensor([0, 1, 2, 3, 4, 1])
    target = _unsmoothed_targets(case, labels)
    mass = F.one_hot(labels, K).float() if case.targets == "hard" else target
    _masked_check(loss, torch.randn(6, K), target, mass == 0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_neg_inf_logits_at_default_alpha_fail_only_where_the_target_has_mass(case: LossCase) -> None:
    loss = make_case_loss(case).eval()
    labels = torch.tensor([0, 1, 2, 3, 4, 1])
    target = _unsmoothed_targets(case, labels)
    mass = (F.one_hot(labels, K).float() if case.targets == "hard" else target) @ loss.target_matrix()
    if (mass == 0).any():  # ce, soft_kl
        _masked_check(loss, torch.randn(6, K), target, mass == 0)
    with_mass = (mass > 0) & ~F.one_hot(labels, K).bool()
    if with_mass.any():  # a masked class that the target gives mass to: an infinite loss, reported
        with pytest.raises(ValueError, match="Expected finite logits but got inf"):
            loss(torch.randn(6, K).masked_fill(with_mass, float("-inf")), target)


@pytest.mark.parametrize("case", [c for c in CASES if c.name == "ols"], ids=lambda c: c.id)
def test_ols_matrix_learned_with_masked_classes_takes_masked_logits(case: LossCase) -> None:
    """A period in which class K-1 has probability 0 leaves S[y, K-1] = 0: -inf logits there are then legal.

    Sparse S holds the zero only in a slot (its tail is spread uniformly), hence N = K here.
    """
    loss = make_case_loss(case, update_every=1, top_n=None if case.top_n is None else K)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    target = _unsmoothed_targets(case, labels)
    mask = torch.zeros(8, K, dtype=torch.bool)
    mask[:, K - 1] = True
    logits = (torch.randn(8, K) + 5 * F.one_hot(target.argmax(-1) if case.targets != "hard" else labels, K))
    loss(logits.masked_fill(mask, -1e4), target)  # S⁰ is uniform, so not -inf yet; swaps (update_every=1)
    assert (loss.relation_matrix()[: K - 1, K - 1] == 0).all()
    _masked_check(loss.eval(), torch.randn(8, K), _unsmoothed_targets(case, labels.flip(0)), mask)


@pytest.mark.parametrize("case", loss_cases(targets=("hard",)), ids=lambda c: c.id)
def test_class_ids_and_one_hot_targets_count_ties_alike(case: LossCase) -> None:
    """A sample whose label ties with another class at the row maximum counts the same way (OLS: as correct)."""
    hard, soft = _twins(case)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 2, 4])
    logits = torch.randn(8, K)
    logits[torch.arange(8), labels] = logits[torch.arange(8), (labels + 1) % K] = 4.0  # ties at the maximum
    z_hard, z_soft = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    value_hard, value_soft = hard(z_hard, labels), soft(z_soft, F.one_hot(labels, K).float())
    torch.testing.assert_close(value_soft, value_hard)
    value_hard.backward(), value_soft.backward()
    torch.testing.assert_close(z_soft.grad, z_hard.grad)
    _assert_states_equal(hard, soft)
    hard.end_epoch(), soft.end_epoch()
    _assert_states_equal(hard, soft)


def _underflow_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Relation logits Q [K, K] with entries 85 to 120 below their row's maximum (one on the diagonal), labels,
    logits."""
    g = torch.Generator().manual_seed(4)
    q = torch.randn(K, K, generator=g)
    q[0, 3], q[1, 4], q[2, 0], q[3, 3] = -85.0, -90.0, -100.0, -120.0
    return q, torch.arange(K), torch.randn(K, K, generator=g) * 2


def _underflowing_paths(name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(per-sample loss, gradient w.r.t. the K×K relation logits) of class ids and one-hot targets, dense and sparse
    with every class in the slots."""
    q, labels, logits = _underflow_inputs()
    dense = hf_labelsmooth.create_loss(name, K, reduction="none")
    sparse = hf_labelsmooth.create_loss(name, K, reduction="none", top_n=dense.max_related)
    with torch.no_grad():
        dense.logits.copy_(q)
        sparse.logits.copy_(q.gather(1, sparse.slots))
    out = []
    for loss in (dense, sparse):
        for target in (labels, F.one_hot(labels, K).float()):
            value = loss(logits, target)
            grad, = torch.autograd.grad(value.sum(), loss.logits)
            out.append((value, grad if loss is dense else torch.zeros(K, K).scatter(1, sparse.slots, grad)))
    return out


@pytest.mark.parametrize("name", [n for n in hf_labelsmooth.list_losses(supports_top_n=True)
                                  if hf_labelsmooth.get_loss_class(n).requires_optimizer])
def test_underflowing_relation_logits_agree_across_paths(name: str) -> None:
    """α·R below float32's range: class ids, one-hot targets and sparse N = K rows give one loss and one gradient."""
    (value, grad), *others = _underflowing_paths(name)
    for other_value, other_grad in others:
        torch.testing.assert_close(other_value, value, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(other_grad, grad, rtol=1e-5, atol=1e-6)


def test_lls_underflowing_relation_entries_are_exact_and_get_gradients() -> None:
    """LLS log t is exact (log α + log R): the loss and the gradient of the entries far below float32's range match
    the float64 formula of docs/methods.md (a clamp at log(tiny) gave them no gradient and moved the loss by up to 8
    here)."""
    (value, grad), *_ = _underflowing_paths("lls")
    q, labels, logits = _underflow_inputs()
    q = q.double().requires_grad_(True)
    t = 0.9 * F.one_hot(labels, K).double() + 0.1 * q[labels].softmax(-1)
    log_p = logits.double().log_softmax(-1)
    reference = ((t * (t.log() - log_p)).sum(-1) + (log_p.exp() * (log_p - t.log())).sum(-1)) / 2
    torch.testing.assert_close(value.double(), reference.detach(), rtol=1e-5, atol=1e-5)
    ref_grad, = torch.autograd.grad(reference.sum(), q)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-6)
    assert (grad[[0, 1, 2], [3, 4, 0]].abs() > 1e-3).all()
