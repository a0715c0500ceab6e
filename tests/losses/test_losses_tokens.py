"""Token classification: every registered loss takes [B, T, K] logits with [B, T] labels and ignores -100.

The reference of each case is the same loss on the kept tokens alone, as [M, K] rows (the row-level losses are
checked against the SPEC formulas in `test_losses_formulas`): values, gradients to the logits and to the loss's
own parameters, and every buffer after training updates and a period end (OLS counts correct tokens only, the
sparse slots record confusions of kept tokens only). ls and ce are also checked against ``F.cross_entropy`` with
``ignore_index=-100``.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from hf_labelsmooth.losses.tokens import count_targets
from tests.support.factories import generator
from tests.support.loss_cases import K, LossCase, loss_cases, make_case_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

B, T = 3, 5
CASES = loss_cases(("hard",))


def _tokens(seed: int = 0, ignored: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, T, K] (label boosted: some tokens correct) and labels [B, T] with about `ignored` of them -100."""
    g = generator(seed)
    labels = torch.randint(0, K, (B, T), generator=g)
    logits = torch.randn(B, T, K, generator=g) * 1.5 + 2.0 * F.one_hot(labels, K)
    drop = torch.rand(B, T, generator=g) < ignored
    drop[0, 0], drop[0, 1] = True, False  # at least one ignored and one kept token
    return logits, labels.masked_fill(drop, -100)


def _twins(case: LossCase, **kwargs) -> tuple[hf_labelsmooth.RelationLoss, hf_labelsmooth.RelationLoss]:
    torch.manual_seed(0)
    loss = make_case_loss(case, **kwargs).train()
    for param in loss.parameters():  # learnable relations away from their uniform start
        torch.nn.init.normal_(param)
    return loss, copy.deepcopy(loss)


def _compare(tokens_loss: hf_labelsmooth.RelationLoss, rows_loss: hf_labelsmooth.RelationLoss) -> None:
    for (name, p_t), p_r in zip(tokens_loss.named_parameters(), rows_loss.parameters()):
        torch.testing.assert_close(p_t.grad, p_r.grad, rtol=1e-5, atol=1e-6, msg=name)
    for (name, b_t), b_r in zip(tokens_loss.named_buffers(), rows_loss.buffers()):
        torch.testing.assert_close(b_t, b_r, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tokens_equal_the_kept_rows(case: LossCase, reduction: str) -> None:
    """Two training steps and a period end: token loss with -100 == the loss on the kept tokens as rows."""
    tokens_loss, rows_loss = _twins(case, reduction=reduction)
    for step in range(2):
        logits, labels = _tokens(step)
        kept = labels.reshape(-1) != -100
        z_tok = logits.clone().requires_grad_(True)
        z_rows = logits.reshape(-1, K)[kept].clone().requires_grad_(True)
        value = tokens_loss(z_tok, labels)
        expected = rows_loss(z_rows, labels.reshape(-1)[kept])
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        value.backward()
        expected.backward()
        grad = z_tok.grad.reshape(-1, K)
        torch.testing.assert_close(grad[kept], z_rows.grad, rtol=1e-5, atol=1e-6)
        assert not grad[~kept].any()  # ignored tokens get exactly zero gradient
        _compare(tokens_loss, rows_loss)
        for loss in (tokens_loss, rows_loss):
            loss.zero_grad()
    tokens_loss.end_epoch(), rows_loss.end_epoch()
    _compare(tokens_loss, rows_loss)
    torch.testing.assert_close(tokens_loss.relation_matrix(), rows_loss.relation_matrix())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reduction_none_gives_zero_at_ignored_tokens(case: LossCase) -> None:
    logits, labels = _tokens(3)
    per_token = make_case_loss(case, reduction="none")(logits, labels)
    kept = labels != -100
    assert per_token.shape == (B, T)
    assert not per_token[~kept].any() and bool((per_token[kept] > 0).all())
    mean = make_case_loss(case)(logits, labels)
    torch.testing.assert_close(mean, per_token.sum() / kept.sum())


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_ls_and_ce_equal_torch_cross_entropy_with_ignore_index(alpha: float) -> None:
    logits, labels = _tokens(4)
    flat_z, flat_y = logits.double().reshape(-1, K), labels.reshape(-1)
    for name, a in (("ls", alpha), ("ce", 0.0)):
        z = logits.clone().requires_grad_(True)
        reference = flat_z.clone().requires_grad_(True)
        value = hf_labelsmooth.create_loss(name, num_classes=K, alpha=a)(z, labels)
        expected = F.cross_entropy(reference, flat_y, label_smoothing=a, ignore_index=-100)
        torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-6)
        value.backward(), expected.backward()
        torch.testing.assert_close(z.grad.double().reshape(-1, K), reference.grad, rtol=1e-5, atol=1e-7)


def test_ols_counts_correct_tokens_only() -> None:
    logits, labels = _tokens(5)
    loss = hf_labelsmooth.create_loss("ols", num_classes=K).train()
    loss(logits, labels)
    kept = labels != -100
    correct = (logits.argmax(-1) == labels) & kept
    expected = torch.zeros(K).index_add_(0, labels[correct], torch.ones(int(correct.sum())))
    torch.testing.assert_close(loss.counts, expected)
    garbage = logits.clone()
    garbage[~kept] = torch.randn(int((~kept).sum()), K) * 10  # ignored tokens' logits change nothing
    again = hf_labelsmooth.create_loss("ols", num_classes=K).train()
    again(garbage, labels)
    torch.testing.assert_close(again.accumulator, loss.accumulator)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_token_ignored_gives_zero_and_no_statistics(case: LossCase) -> None:
    loss, fresh = _twins(case)
    logits, labels = _tokens(6)
    z = logits.clone().requires_grad_(True)
    value = loss(z, torch.full_like(labels, -100))
    value.backward()
    assert value.item() == 0.0 and not z.grad.any()
    for param in loss.parameters():
        assert not param.grad.any()
    for (name, b), b_fresh in zip(loss.named_buffers(), fresh.buffers()):
        if name not in ("steps", "refresh_steps"):  # batch counters count the batch (update periods stay in step)
            torch.testing.assert_close(b, b_fresh, msg=name)


def test_gradient_accumulation_counts_tokens() -> None:
    """Micro-batches' sums divided by the tokens of the whole batch (the Trainer's num_items_in_batch) == one batch."""
    logits, labels = _tokens(7, ignored=0.5)
    z_big = logits.clone().requires_grad_(True)
    hf_labelsmooth.create_loss("ls", num_classes=K)(z_big, labels).backward()
    z = logits.clone().requires_grad_(True)
    total = sum(count_targets(part) for part in labels.split(1))
    assert int(total) == int((labels != -100).sum())
    loss = hf_labelsmooth.create_loss("ls", num_classes=K, reduction="sum")
    for part_z, part_y in zip(z.split(1), labels.split(1)):
        (loss(part_z, part_y) / total).backward()
    torch.testing.assert_close(z.grad, z_big.grad, rtol=1e-5, atol=1e-7)


def test_count_targets() -> None:
    labels = torch.tensor([[0, -100, 2], [1, 1, -100]])
    assert int(count_targets(labels)) == 4  # token labels: -100 ignored by default
    assert int(count_targets(labels[0], ignore_index=-100)) == 2
    assert int(count_targets(torch.tensor([0, 1, 2]))) == 3  # sequence labels: every row
    assert int(count_targets(torch.full((4, 3, K), 1.0 / K))) == 12  # soft token targets: every token


def test_soft_token_targets_equal_rows() -> None:
    logits, labels = _tokens(8)
    soft = 0.8 * F.one_hot(labels.clamp_min(0), K).float() + 0.2 / K  # soft targets are never ignored
    loss = hf_labelsmooth.create_loss("lls", num_classes=K, reduction="none")
    torch.testing.assert_close(loss(logits, soft), loss(logits.reshape(-1, K), soft.reshape(-1, K)).reshape(B, T))


def test_sequence_logits_ignore_only_a_chosen_index() -> None:
    z, y = torch.randn(4, K), torch.tensor([0, -100, 3, 1])
    with pytest.raises(ValueError, match=r"got -100 .* in rows \[1\].*ignore_index=-100 to skip them"):
        hf_labelsmooth.create_loss("ls", num_classes=K)(z, y)
    value = hf_labelsmooth.create_loss("ls", num_classes=K, ignore_index=-100)(z, y)
    kept = y != -100
    torch.testing.assert_close(value, hf_labelsmooth.create_loss("ls", num_classes=K)(z[kept], y[kept]))


def test_a_chosen_ignore_index_replaces_the_token_default() -> None:
    logits, labels = _tokens(9)
    labels = labels.masked_fill(labels == -100, K)  # padding marked K instead of -100
    loss = hf_labelsmooth.create_loss("ce", num_classes=K, ignore_index=K)
    expected = F.cross_entropy(logits.reshape(-1, K), labels.reshape(-1), ignore_index=K)
    torch.testing.assert_close(loss(logits, labels), expected)
    with pytest.raises(ValueError, match=r"Expected labels in \[0, 5\) \(other than the ignore index 5\) but got "
                                         r"values in \[-100, 4\]"):
        loss(logits, labels.masked_fill(labels == K, -100))


@pytest.mark.parametrize(("shape", "match"), [((B, T + 1), r"token class ids of shape \(3, 5\)"),
                                              ((B * T,), r"class ids of shape \(3, 5\)")])
def test_token_label_shape_errors(shape: tuple[int, ...], match: str) -> None:
    logits = torch.randn(B, T, K)
    with pytest.raises(ValueError, match=match):
        hf_labelsmooth.create_loss("ls", num_classes=K)(logits, torch.zeros(shape, dtype=torch.long))


def test_ignore_index_is_validated() -> None:
    for bad in (True, 1.5, "x"):
        with pytest.raises(ValueError, match=r"Expected `ignore_index` to be an integer"):
            hf_labelsmooth.create_loss("ls", num_classes=K, ignore_index=bad)
