"""Non-finite values never reach a gradient silently (issue 22): for every registered loss (dense and ``top_n``,
class ids and Mixup), a NaN / inf / negative value put into any state tensor or any input raises before any
parameter or state changes, naming the tensor (or batch) and the rows."""
from __future__ import annotations

import pytest
import torch

import hf_labelsmooth
from tests.support.loss_cases import K, LossCase, global_batches, loss_cases, make_case_loss

CASES = loss_cases()
STATEFUL = [c for c in CASES if any(torch.is_floating_point(v) for v in make_case_loss(c).state_dict().values())]


def _trained(case: LossCase) -> hf_labelsmooth.RelationLoss:
    """The case's loss after two batches, its parameters moved off their start (a non-trivial state)."""
    loss = make_case_loss(case).train()
    with torch.no_grad():
        for param in loss.parameters():
            param.normal_()
    for logits, target in global_batches(case)[:2]:
        loss(logits, target)
    return loss


def _snapshot(loss: hf_labelsmooth.RelationLoss) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in loss.state_dict().items()}


def _assert_unchanged(loss: hf_labelsmooth.RelationLoss, before: dict[str, torch.Tensor]) -> None:
    for key, value in loss.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True, rtol=0, atol=0, msg=key)
    assert all(p.grad is None for p in loss.parameters())


def _bad_values(loss: hf_labelsmooth.RelationLoss, name: str) -> list[float]:
    """NaN and ±inf everywhere; negatives where the tensor holds probabilities, sums or counts."""
    values = [float("nan"), float("inf"), float("-inf")]
    states = {n for spec in loss.state_specs for n in spec.names}
    if name in states or loss._rules.get(name, "finite") != "finite":  # noqa: SLF001 (the declared rule)
        values.append(-0.25)
    return values


def test_every_loss_with_a_matrix_has_a_checked_state() -> None:
    """Every loss that learns or holds a matrix is covered (the others have no float state to poison)."""
    holding = {n for n in hf_labelsmooth.list_losses() if (lambda s: s.learns_relations or s.requires_matrix)(
        hf_labelsmooth.get_loss_class(n).spec)}
    assert {c.name for c in STATEFUL} == holding


@pytest.mark.parametrize("case", STATEFUL, ids=lambda c: c.id)
def test_a_bad_value_in_any_state_tensor_is_refused_at_load(case: LossCase) -> None:
    loss = _trained(case)
    good = _snapshot(loss)
    names = [n for n, v in good.items() if torch.is_floating_point(v) and v.numel()]
    for name in names:
        for value in _bad_values(loss, name):
            state = {k: v.clone() for k, v in good.items()}
            row = min(1, state[name].shape[0] - 1) if state[name].ndim else 0
            flat = state[name].view(-1) if state[name].ndim < 2 else state[name][row]
            flat[0 if state[name].ndim < 2 else 0] = value
            target = make_case_loss(case).train()
            before = _snapshot(target)
            with pytest.raises(ValueError, match=rf"Expected `{name}` .* in the state dict loaded"):
                target.load_state_dict(state)
            _assert_unchanged(target, before)


def _poisoned_inputs(case: LossCase) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    logits, target = global_batches(case)[2]
    out = []
    for value in (float("nan"), float("inf")):
        x = logits.clone()
        x[1, 2] = value
        out.append((f"logit {value}", x, target))
    if case.targets == "hard":
        for label in (-1, K):
            t = target.clone()
            t[0] = label
            out.append((f"label {label}", logits, t))
    else:
        for value in (float("nan"), float("inf"), -0.5):
            t = target.clone()
            t[0, 0] = value
            out.append((f"target {value}", logits, t))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_input_raises_before_any_state_changes(case: LossCase) -> None:
    loss = _trained(case)
    before = _snapshot(loss)
    for what, logits, target in _poisoned_inputs(case):
        x = logits.clone().requires_grad_(True)
        with pytest.raises(ValueError, match=r"Expected .*batch 2\b"):
            loss(x, target).backward()
        loss.batches_seen = 2
        _assert_unchanged(loss, before)
        assert x.grad is None, what


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("ols", "relation_prior") and c.top_n is None],
                         ids=lambda c: c.id)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5])
def test_a_matrix_row_changed_in_place_is_refused_before_backward(case: LossCase, value: float) -> None:
    """The reproducer of issue 22: a NaN row gave a finite loss and NaN gradients (nansum); any non-stochastic row
    a batch reads is refused, naming the matrix and the class."""
    loss = make_case_loss(case).train()
    with torch.no_grad():
        loss.matrix[1, 0] = value
    before = _snapshot(loss)
    x = torch.randn(3, K, requires_grad=True)
    target = torch.tensor([1, 0, 2]) if case.targets == "hard" else torch.eye(K)[[1, 0, 2]]
    with pytest.raises(ValueError, match=r"Expected `matrix` .* rows \[1\] in batch 0"):
        loss(x, target).backward()
    assert x.grad is None
    _assert_unchanged(loss, before)


@pytest.mark.parametrize("name", ["ce", "ols", "lspp", "relation_prior"])
def test_nan_logits_with_soft_targets_are_not_a_finite_loss(name: str) -> None:
    """Was a finite loss for ce / ols / lspp (nansum dropped the NaN row): now it raises, naming the row."""
    case = LossCase(name, None, "mixup")
    loss = make_case_loss(case, check_inputs=False)
    logits, target = global_batches(case)[0]
    logits[0] = float("nan")
    assert torch.isnan(loss(logits, target))
    with pytest.raises(ValueError, match=r"Expected finite logits but got NaN in batch 0 \(rows \[0\]\)"):
        make_case_loss(case)(logits, target)
