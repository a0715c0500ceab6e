"""OLS statistics: accumulation of correct predictions, epoch swaps, update_every, eval mode, soft targets."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from tests.support.factories import generator

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K = 4


def _expected_matrix(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    acc = torch.zeros(K, K, dtype=torch.float64)
    for z, y in batches:
        p = z.double().softmax(-1)
        for i in range(len(y)):
            if int(p[i].argmax()) == int(y[i]):
                acc[int(y[i])] += p[i]
    rows = []
    for k in range(K):
        rows.append(acc[k] / acc[k].sum() if acc[k].sum() > 0 else torch.full((K,), 1.0 / K, dtype=torch.float64))
    return torch.stack(rows)


def _epoch(seed: int, never: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = generator(seed)
    out = []
    for _ in range(3):
        y = torch.randint(0, K, (8,), generator=g)
        z = torch.randn(8, K, generator=g) + 2.5 * F.one_hot(y, K)
        if never is not None:
            z[:, never] = -10.0  # class `never` is never predicted, so never correct
        out.append((z, y))
    return out


def test_first_epoch_is_label_smoothing_and_two_epochs_of_updates() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, alpha=0.5)
    epoch1, epoch2 = _epoch(1), _epoch(2, never=3)
    z, y = epoch1[0]
    uniform_target = 0.5 * F.one_hot(y, K) + 0.5 / K
    assert torch.allclose(loss(z, y), -(uniform_target * z.log_softmax(-1)).sum(-1).mean(), atol=1e-6)
    for z, y in epoch1[1:]:
        loss(z, y)
    loss.end_epoch()
    s1 = _expected_matrix(epoch1)
    assert torch.allclose(loss.relation_matrix().double(), s1, atol=1e-6)
    z, y = epoch2[0]
    expected = (0.5 * F.cross_entropy(z, y, reduction="none") - 0.5 * (s1[y].float() * z.log_softmax(-1)).sum(-1))
    assert torch.allclose(loss(z, y), expected.mean(), atol=1e-6)
    for z, y in epoch2[1:]:
        loss(z, y)
    loss.end_epoch()
    s2 = _expected_matrix(epoch2)
    assert torch.allclose(s2[3], torch.full((K,), 0.25, dtype=torch.float64))  # no correct sample: uniform
    assert torch.allclose(loss.relation_matrix().double(), s2, atol=1e-6)
    assert loss.accumulator.abs().sum() == 0 and loss.counts.sum() == 0


def test_keep_policy_keeps_previous_row_for_unseen_class() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, empty_row="keep")
    for z, y in _epoch(1):
        loss(z, y)
    loss.end_epoch()
    before = loss.relation_matrix()
    for z, y in _epoch(2, never=3):
        loss(z, y)
    loss.end_epoch()
    assert torch.equal(loss.relation_matrix()[3], before[3])


def test_eval_mode_does_not_accumulate() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K).eval()
    for z, y in _epoch(1):
        loss(z, y)
    assert loss.counts.sum() == 0 and int(loss.steps) == 0


def test_update_every_swaps_after_n_training_batches_and_end_epoch_does_not() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, update_every=2)
    batches = _epoch(1)
    loss(*batches[0])
    loss.end_epoch()
    assert torch.allclose(loss.relation_matrix(), torch.full((K, K), 1 / K))
    loss(*batches[1])
    assert torch.allclose(loss.relation_matrix().double(), _expected_matrix(batches[:2]), atol=1e-6)


def test_soft_targets_update_row_argmax_t_when_prediction_matches() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K)
    t = torch.tensor([[0.7, 0.3, 0.0, 0.0], [0.0, 0.4, 0.6, 0.0]])
    z = torch.tensor([[3.0, 1.0, 0.0, 0.0], [0.0, 3.0, 1.0, 0.0]])  # first correct (class 0), second wrong
    loss(z, t)
    assert torch.allclose(loss.accumulator[0], z[0].softmax(-1))
    assert loss.accumulator[1:].abs().sum() == 0 and loss.counts.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_freeze_threshold_freezes_confident_rows() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, freeze_threshold=0.5)
    y = torch.arange(K)
    loss(F.one_hot(y, K) * 10.0, y)
    loss.end_epoch()
    frozen = loss.relation_matrix()
    loss(torch.zeros(K, K).fill_diagonal_(1.0), y)
    loss.end_epoch()
    assert loss.frozen.all() and torch.equal(loss.relation_matrix(), frozen)


@pytest.mark.parametrize("top_n", [None, K])
@pytest.mark.parametrize("empty_row", ["uniform", "keep"])
def test_frozen_row_keeps_its_value_unless_its_class_has_no_correct_sample(empty_row: str, top_n: int | None) -> None:
    """As in the authors' code: a row with no correct sample in a period is reset ("uniform") before the freeze
    test, which unfreezes it; a frozen row whose class is still classified correctly keeps its value."""
    loss = hf_labelsmooth.create_loss("ols", num_classes=K, freeze_threshold=0.5, empty_row=empty_row, top_n=top_n)
    y = torch.arange(K)
    loss(F.one_hot(y, K) * 10.0, y)
    loss.end_epoch()
    frozen = loss.relation_matrix()
    assert loss.frozen.all()
    loss(torch.zeros(2, K).index_fill_(1, y[:1], 1.0), y[:2] * 0)  # only class 0 is seen, with a flatter row
    loss.end_epoch()
    after = loss.relation_matrix()
    torch.testing.assert_close(after[0], frozen[0])
    if empty_row == "uniform":
        torch.testing.assert_close(after[1:], torch.full((K - 1, K), 1.0 / K))
        assert loss.frozen.tolist() == [True] + [False] * (K - 1)
        loss(torch.zeros(1, K).index_fill_(1, y[1:2], 1.0), y[1:2])  # unfrozen: row 1 learns again
        loss.end_epoch()
        torch.testing.assert_close(loss.relation_matrix()[1], torch.zeros(K).index_fill_(0, y[1:2], 1.0).softmax(-1))
    else:
        torch.testing.assert_close(after, frozen)
        assert loss.frozen.all()
