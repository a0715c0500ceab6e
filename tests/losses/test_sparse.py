"""Sparse top-N relation rows (`top_n=N`) of ols, lspp and lls: equal to dense at full N, tail, refresh, tables."""
from __future__ import annotations

import pytest
import torch

from hf_labelsmooth import create_loss
from hf_labelsmooth.losses.sparse.tables import merge_into

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K = 7


def _pair(name: str, n: int, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A dense loss with random logits and the sparse one (N = n) holding the same logits in its slots."""
    torch.manual_seed(seed)
    dense, sparse = create_loss(name, K), create_loss(name, K, top_n=n)
    with torch.no_grad():
        dense.logits.normal_(0, 1.5)
        sparse.logits.copy_(dense.logits.gather(1, sparse.slots))
        sparse.tail_logits.normal_()  # the tail is empty at full N: it must not matter
    return dense, sparse


def _targets(kind: str) -> torch.Tensor:
    torch.manual_seed(1)
    if kind == "hard":
        return torch.randint(0, K, (12,))
    return torch.randn(12, K).mul(2).softmax(-1)


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize(("name", "n"), [("lspp", K - 1), ("lls", K)])
def test_full_sparse_equals_dense_values_and_gradients(name: str, n: int, kind: str) -> None:
    dense, sparse = _pair(name, n)
    z = torch.randn(12, K, requires_grad=True)
    target = _targets(kind)
    dense_loss, = [dense(z, target)]
    grad_dense_z, grad_dense_m = torch.autograd.grad(dense_loss, [z, dense.logits])
    sparse_loss = sparse(z, target)
    grad_sparse_z, grad_sparse_m, grad_tail = torch.autograd.grad(
        sparse_loss, [z, sparse.logits, sparse.tail_logits], allow_unused=True)
    torch.testing.assert_close(sparse_loss, dense_loss)
    torch.testing.assert_close(grad_sparse_z, grad_dense_z)
    torch.testing.assert_close(grad_sparse_m, grad_dense_m.gather(1, sparse.slots))
    assert grad_tail is None or grad_tail.abs().max() == 0
    torch.testing.assert_close(sparse.relation_matrix(), dense.relation_matrix())


def test_full_sparse_ols_equals_dense_over_updates_and_swaps() -> None:
    dense, sparse = create_loss("ols", K, update_every=3), create_loss("ols", K, update_every=3, top_n=K)
    torch.manual_seed(2)
    for step in range(7):
        z = torch.randn(16, K) * 3
        target = torch.randint(0, K, (16,)) if step % 2 else torch.randn(16, K).softmax(-1)
        torch.testing.assert_close(sparse(z, target), dense(z, target))
    assert not torch.allclose(dense.relation_matrix(), torch.full((K, K), 1 / K))  # the swaps did happen
    torch.testing.assert_close(sparse.relation_matrix(), dense.relation_matrix())
    idx, val = sparse.relation_topk(3)
    dense_idx, dense_val = dense.relation_topk(3)
    torch.testing.assert_close(val, dense_val)
    learned = dense.relation_matrix().max(-1).values > 1 / K + 1e-6  # rows without ties
    assert learned.any() and torch.equal(idx[learned], dense_idx[learned])
    assert (idx >= 0).all()


@pytest.mark.parametrize("name", ["ols", "lspp", "lls"])
def test_fresh_sparse_loss_equals_fresh_dense_loss(name: str) -> None:
    """With few slots, the tail keeps a fresh sparse row uniform, like the dense start."""
    dense, sparse = create_loss(name, 50), create_loss(name, 50, top_n=4)
    z, y = torch.randn(9, 50), torch.randint(0, 50, (9,))
    torch.testing.assert_close(sparse(z, y), dense(z, y))
    torch.testing.assert_close(sparse.relation_matrix(), dense.relation_matrix())


@pytest.mark.parametrize("case", ["lls", "lls_own_in_tail", "lspp", "ols"])
def test_partial_sparse_loss_matches_its_materialised_rows(case: str) -> None:
    """For N < K the loss (hard labels: closed form) is the dense loss of the sparse R (slots + uniform tail)."""
    name = case.split("_")[0]
    if name == "ols":
        sparse = create_loss("ols", K, top_n=3)
        for _ in range(3):
            y = torch.randint(0, K, (32,))
            sparse(torch.randn(32, K) + 3 * torch.nn.functional.one_hot(y, K), y)
        sparse.end_epoch()
    else:
        slot_init = (torch.arange(K)[:, None] + torch.arange(1, 4)) % K if case.endswith("tail") else None
        sparse = create_loss(name, K, top_n=3, slot_init=slot_init)
        with torch.no_grad():
            sparse.logits.normal_(0, 1.5), sparse.tail_logits.normal_()
    ref = create_loss(name, K)
    with torch.no_grad():
        (ref.matrix if name == "ols" else ref.logits).copy_(sparse.relation_matrix().clamp_min(1e-30).log()
                                                            if name != "ols" else sparse.relation_matrix())
    z, y = torch.randn(12, K, requires_grad=True), _targets("hard")
    params = [p for p in sparse.parameters()]
    loss, ref_loss = sparse(z, y), ref(z, y)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(torch.autograd.grad(loss, z)[0], torch.autograd.grad(ref_loss, z)[0])
    soft = _targets("soft")
    torch.testing.assert_close(sparse(z, soft), ref(z, soft))
    torch.testing.assert_close(sparse.relation_matrix().sum(-1), torch.ones(K))
    assert params == list(sparse.parameters())


def _confuse(loss: torch.nn.Module, label: int, wrong: int, batches: int = 3) -> None:
    for _ in range(batches):
        z = torch.randn(8, loss.num_classes)
        z[:, wrong] += 8.0
        loss(z, torch.full((8,), label))


@pytest.mark.parametrize("name", ["lspp", "lls"])
def test_refresh_swaps_lowest_slot_for_confused_class(name: str) -> None:
    loss = create_loss(name, 12, top_n=3)
    with torch.no_grad():
        loss.logits.copy_(torch.tensor([0.5, -2.0, 1.0]).expand(12, 3))
    before_slots, before_r = loss.slots[0].clone(), loss.relation_matrix()[0]
    assert 9 not in before_slots.tolist()
    _confuse(loss, label=0, wrong=9)
    loss.end_epoch()
    after = loss.slots[0].tolist()
    assert 9 in after and after.index(9) == 1  # slot 1 had the lowest logit
    assert before_slots[1].item() not in after
    after_r = loss.relation_matrix()[0]
    kept = before_slots[0]  # the incoming class keeps its (tail) logit: odds against a kept slot are unchanged
    torch.testing.assert_close(after_r[9] / after_r[kept], before_r[9] / before_r[kept])
    torch.testing.assert_close(after_r.sum(), torch.tensor(1.0))
    assert torch.equal(loss.slots[1:], create_loss(name, 12, top_n=3).slots[1:])  # unconfused rows untouched
    assert int((loss.candidate_index >= 0).sum()) == 0


def test_lls_refresh_never_evicts_own_class_and_refresh_every() -> None:
    loss = create_loss("lls", 12, top_n=2, refresh_every=2)
    with torch.no_grad():
        loss.logits[:, 0] = -5.0  # own class (slot 0) has the lowest logit
    _confuse(loss, label=0, wrong=9, batches=2)
    assert loss.slots[0].tolist() == [0, 9]


def test_sparse_ols_top_n_matches_dense_top_n() -> None:
    dense, sparse = create_loss("ols", 20), create_loss("ols", 20, top_n=4, buffer_factor=5)
    torch.manual_seed(3)
    for _ in range(5):
        z, y = torch.randn(64, 20) * 4, torch.randint(0, 20, (64,))
        dense(z, y), sparse(z, y)
    dense.end_epoch(), sparse.end_epoch()
    idx, val = sparse.relation_topk()
    dense_val, dense_idx = dense.relation_matrix().topk(4, dim=-1)
    learned = dense.relation_matrix().max(-1).values > 1 / 20 + 1e-6  # rows without ties
    torch.testing.assert_close(val, dense_val)
    assert learned.sum() >= 5 and torch.equal(idx[learned], dense_idx[learned])
    torch.testing.assert_close(sparse.relation_matrix().sum(-1), torch.ones(20))


def test_sparse_relation_matrix_refuses_large_k() -> None:
    loss = create_loss("lls", 9000, top_n=2)
    with pytest.raises(ValueError, match="relation_topk"):
        loss.relation_matrix()
    idx, val = loss.relation_topk()
    assert idx.shape == val.shape == (9000, 2)


def test_merge_into_sums_duplicates_keeps_largest_and_reports_dropped() -> None:
    index, values = torch.full((3, 2), -1), torch.zeros(3, 2)
    merge_into(index, values, torch.tensor([0, 0, 0, 2]), torch.tensor([5, 5, 1, 4]), torch.tensor([.2, .3, .1, 1.]))
    assert index[0].tolist() == [5, 1] and values[0].tolist() == pytest.approx([0.5, 0.1])
    dropped = merge_into(index, values, torch.tensor([0]), torch.tensor([3]), torch.tensor([0.4]))
    assert index[0].tolist() == [5, 3] and dropped.tolist() == pytest.approx([0.1, 0.0, 0.0])
    assert index[1].tolist() == [-1, -1] and index[2].tolist() == [4, -1]


@pytest.mark.parametrize(("name", "bad"), [("lspp", 7), ("lls", 8), ("ols", 0)])
def test_top_n_out_of_range_is_rejected(name: str, bad: int) -> None:
    with pytest.raises(ValueError, match="top_n"):
        create_loss(name, K, top_n=bad)


@pytest.mark.parametrize("top_n", [None, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("name", ["ols", "lspp", "lls"])
def test_hard_label_fast_path_equals_one_hot_targets(name: str, alpha: float, top_n: int | None) -> None:
    """Class ids skip the one-hot (fused targets); one-hot soft targets take the general path: same values/grads."""
    torch.manual_seed(4)
    loss = create_loss(name, K, alpha=alpha, top_n=top_n)
    for p in loss.parameters():
        torch.nn.init.normal_(p)
    y = torch.randint(0, K, (10,))
    z = torch.randn(10, K, requires_grad=True)
    params = [z, *loss.parameters()]
    hard = loss(z, y)
    grads_hard = torch.autograd.grad(hard, params, allow_unused=True)
    soft = loss(z, torch.nn.functional.one_hot(y, K).float())
    grads_soft = torch.autograd.grad(soft, params, allow_unused=True)
    torch.testing.assert_close(hard, soft)
    for param, a, b in zip(params, grads_hard, grads_soft):  # None = no path to the parameter (alpha 0) = zeros
        zero = torch.zeros_like(param)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b)



def test_merge_top_tables_keeps_the_top_entries_of_all_parts_in_any_order() -> None:
    """The cross-process reduction of sparse tables: per (row, class) sums over all parts, the M largest kept (ties
    by class id), the rest added to `dropped`; the same result for every order of the parts."""
    import itertools

    from hf_labelsmooth.losses.sparse.tables import merge_top_tables

    g = torch.Generator().manual_seed(0)
    rows, width, parts = 6, 3, []
    for _ in range(3):
        index = torch.rand(rows, K, generator=g).argsort(dim=-1)[:, :width]
        values = torch.rand(rows, width, generator=g) + 0.1
        empty = torch.rand(rows, width, generator=g) < 0.2
        parts.append((index.masked_fill(empty, -1), values.masked_fill(empty, 0.0), torch.rand(rows, generator=g)))
    totals = torch.zeros(rows, K)
    for index, values, _ in parts:
        totals.scatter_add_(1, index.clamp_min(0), values)  # empty slots add 0
    for perm in itertools.permutations(parts):
        index, values, dropped = merge_top_tables(list(perm))
        for row in range(rows):
            present = [c for c in range(K) if totals[row, c] > 0]
            top = sorted(present, key=lambda c: (-float(totals[row, c]), c))[:width]
            assert index[row].tolist() == top + [-1] * (width - len(top))
            torch.testing.assert_close(values[row, : len(top)], totals[row, top])
        kept = totals.gather(1, index.clamp_min(0)).mul(index >= 0).sum(dim=-1)
        torch.testing.assert_close(dropped, sum(p[2] for p in parts) + totals.sum(dim=-1) - kept)
        pair = merge_top_tables([p[:2] for p in perm])
        assert len(pair) == 2 and torch.equal(pair[0], index) and torch.equal(pair[1], values)
