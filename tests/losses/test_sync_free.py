"""Zero host syncs per training step on the path an accelerator runs (issue 26), and the deferred checks it uses.

`host_shortcuts(False)` makes the CPU take that path (`may_sync` False: no host reads, checks as device-side flags);
`SyncCounter` counts every op that would make the host wait. The deferred checks must catch what the eager ones
catch, and raise with the batch index at the loop's next sync point (`raise_deferred`, `state_dict`, a swap).
"""
from __future__ import annotations

import pytest
import torch

import hf_labelsmooth
from hf_labelsmooth.losses.functional import host_shortcuts
from tests.support.loss_cases import K, LossCase, global_batches, loss_cases, make_case_loss
from tests.support.syncs import SyncCounter

CASES = loss_cases(("hard", "mixup", "tokens"))  # tokens: [B, T, K] with -100 labels ignored


def _step(loss: hf_labelsmooth.RelationLoss, logits: torch.Tensor, target: torch.Tensor) -> None:
    x = logits.clone().requires_grad_(True)
    loss(x, target).backward()
    for param in loss.parameters():
        param.grad = None


@pytest.mark.parametrize("check_inputs", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_training_steps_never_sync(case: LossCase, check_inputs: bool) -> None:
    """Forward, backward and statistics (OLS accumulation, top-N confusions) of every step: zero syncing ops."""
    loss = make_case_loss(case, check_inputs=check_inputs).train()
    batches = global_batches(case)
    with host_shortcuts(False):
        for logits, target in batches:
            with SyncCounter() as counter:
                _step(loss, logits, target)
            assert counter.total == 0, f"{case.id}: {dict(counter.counts)}"
        loss.raise_deferred()  # a clean run leaves nothing pending
    assert not torch.is_nonzero(torch.tensor(len(batches) - loss.batches_seen))


@pytest.mark.parametrize("case", [c for c in CASES if hf_labelsmooth.get_loss_class(c.name).has_update_period(c.top_n)],
                         ids=lambda c: c.id)
def test_a_batch_period_syncs_only_at_its_swaps(case: LossCase) -> None:
    """`update_every` / `refresh_every`: the steps between swaps sync nothing; a swap syncs (once per period)."""
    option = hf_labelsmooth.get_loss_class(case.name).spec.period_option
    loss = make_case_loss(case, **{option: 3}).train()
    with host_shortcuts(False):
        per_step = []
        for logits, target in global_batches(case):
            with SyncCounter() as counter:
                _step(loss, logits, target)
            per_step.append(counter.total)
    assert [n for i, n in enumerate(per_step) if (i + 1) % 3] == [0] * (len(per_step) - len(per_step) // 3), per_step


def _defects(case: LossCase) -> list[tuple[str, int]]:
    """(defect, batch it is put in): bad labels, NaN and +inf logits, and for soft targets negative / NaN targets."""
    kinds = ["label_out_of_range", "nan_logit", "inf_logit"]
    if case.targets == "mixup":
        kinds += ["negative_target", "nan_target"]
    return [(kind, 2) for kind in kinds]


def _poison(kind: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = logits.clone(), target.clone()
    row = (1, int((target[1] != -100).nonzero()[0])) if logits.ndim == 3 else (1,)  # a token that is not ignored
    if kind == "label_out_of_range":
        if not target.is_floating_point():
            target[row] = K
        else:
            target[1] = torch.full((K,), 2.0 / K)
    elif kind == "nan_logit":
        logits[row][0] = float("nan")
    elif kind == "inf_logit":
        logits[row][0] = float("inf")
    elif kind == "negative_target":
        target[1, 0], target[1, 1] = target[1, 0] - 0.5, target[1, 1] + 0.5
    else:
        target[1, 0] = float("nan")
    return logits, target


def _run(loss: hf_labelsmooth.RelationLoss, batches: list, bad: int, kind: str) -> None:
    for i, (logits, target) in enumerate(batches[:bad + 2]):
        if i == bad:
            logits, target = _poison(kind, logits, target)
        _step(loss, logits, target)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_deferred_checks_catch_what_the_eager_checks_catch(case: LossCase) -> None:
    """Each defect raises at once on the CPU path, and on the accelerator path at `raise_deferred`, naming the
    batch; the flagged batch adds nothing to the statistics (the same state as a run that skipped it)."""
    batches = global_batches(case)
    for kind, bad in _defects(case):
        with pytest.raises(ValueError, match=rf"batch {bad}\b"):
            _run(make_case_loss(case).train(), batches, bad, kind)
        loss, clean = make_case_loss(case).train(), make_case_loss(case).train()
        with host_shortcuts(False):
            _run(loss, batches, bad, kind)
            with pytest.raises(ValueError, match=rf"defect in batch {bad} .*found at a logging step"):
                loss.raise_deferred("a logging step")
            loss.raise_deferred()  # raised once, then cleared
        with torch.no_grad():  # statistics only: the deferred path leaves gradients to the next sync point
            for param in loss.parameters():
                param.copy_(clean.state_dict()[next(n for n, p in loss.named_parameters() if p is param)])
        for i, (logits, target) in enumerate(batches[:bad + 2]):
            if i != bad:
                _step(clean, logits, target)
        stats = [n for spec in loss.state_specs for n in spec.names]
        for name in stats:
            torch.testing.assert_close(loss.state_dict()[name], clean.state_dict()[name], msg=f"{kind}: {name}")


@pytest.mark.parametrize("case", [c for c in CASES if c.name == "ols"], ids=lambda c: c.id)
def test_a_save_raises_the_deferred_defect_before_writing(case: LossCase) -> None:
    """`state_dict()` (every checkpoint writer calls it) raises a pending defect: nothing is saved from it."""
    loss = make_case_loss(case).train()
    with host_shortcuts(False):
        _run(loss, global_batches(case), 1, "nan_logit")
        with pytest.raises(ValueError, match="defect in batch 1 .*state_dict"):
            loss.state_dict()
