"""The timm task step syncs nothing on the accelerator path (issue 26), and a deferred check raises at the epoch end,
before timm's saver writes a checkpoint.

Each step is what timm's ``train_one_epoch`` runs per batch: ``task(input, target)``, ``backward``, the optimizer
step (model and matrix param group, timm's default SGD with momentum) and ``zero_grad``, counted by `SyncCounter`
under `host_shortcuts(False)`. Mixup is applied before the step, as train.py does. Adam-like optimizers read their
step count with ``.item()`` on the CPU; on an accelerator that count stays on the host (torch's default,
non-capturable), so they are left out here.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from timm.data import Mixup
from timm.optim import create_optimizer_v2
from timm.utils import CheckpointSaver

import hf_labelsmooth
from hf_labelsmooth.integrations.timm import RelationClassificationTask, add_relation_param_group
from hf_labelsmooth.losses.functional import host_shortcuts
from tests.support.loss_cases import K, TOP_N, LossCase, loss_cases, make_case_loss
from tests.support.syncs import SyncCounter

CASES = loss_cases(("hard", "mixup0", "mixup"))  # class ids; Mixup with label_smoothing 0; timm's default 0.1
STEPS, EPOCHS, BATCH = 3, 2, 8


def _task(case: LossCase, update_every: int | None = None) -> tuple[RelationClassificationTask, torch.optim.Optimizer]:
    """A tiny timm model with the case's loss in timm's task; train.py's optimizer with the matrix param group."""
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet_gn", num_classes=K)
    task = RelationClassificationTask(model, make_case_loss(case), device=torch.device("cpu"),
                                      update_every=update_every, verbose=False)
    module = task.get_trainable_module()
    optimizer = create_optimizer_v2(getattr(module, "model", module), opt="sgd", lr=0.01, momentum=0.9,
                                    weight_decay=1e-4)
    add_relation_param_group(optimizer, task.loss, total_steps=STEPS * EPOCHS)
    task.count_optimizer_steps(optimizer)
    return task, optimizer


def _batches(case: LossCase, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`n` batches of inputs and targets as train.py hands them to the task (Mixup'ed where the case says)."""
    g = torch.Generator().manual_seed(1)
    smoothing = {"mixup0": 0.0, "mixup": 0.1}.get(case.targets)
    mixup = None if smoothing is None else Mixup(mixup_alpha=0.8, label_smoothing=smoothing, num_classes=K)
    batches = []
    for _ in range(n):
        x, y = torch.randn(BATCH, 3, 16, 16, generator=g), torch.randint(0, K, (BATCH,), generator=g)
        batches.append(mixup(x, y) if mixup is not None else (x, y))
    return batches


def _step(task: RelationClassificationTask, optimizer: torch.optim.Optimizer, x: torch.Tensor,
          y: torch.Tensor) -> dict[str, int]:
    """One step of train.py's loop; the host-syncing ops it ran."""
    with SyncCounter() as counter:
        task(x, y)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    return dict(counter.counts)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_timm_task_step_never_syncs(case: LossCase) -> None:
    """Every step of every epoch: zero syncs; the epoch end reads the deferred flags (its one sync point)."""
    task, optimizer = _task(case)
    batches = _batches(case, STEPS)
    steps, ends = [], []
    with host_shortcuts(False):
        for _ in range(EPOCHS):
            steps += [_step(task, optimizer, x, y) for x, y in batches]
            with SyncCounter() as counter:
                task.end_epoch()
            ends.append(counter.counts["tolist"])
    assert steps == [{}] * (STEPS * EPOCHS)
    assert all(n >= 1 for n in ends), ends  # raise_deferred read the flags at each epoch end
    assert task.optimizer_steps == STEPS * EPOCHS and task.loss.batches_seen == STEPS * EPOCHS


PERIOD_CASES = [c for c in CASES if c.targets == "hard" and hf_labelsmooth.get_loss_class(c.name).has_update_period(
    c.top_n)]


@pytest.mark.parametrize("case", PERIOD_CASES, ids=lambda c: c.id)
def test_an_optimizer_step_period_syncs_only_at_its_refreshes(case: LossCase) -> None:
    """``--relation-update-every 2``: the refresh runs in the optimizer's post-step hook; other steps sync nothing."""
    task, optimizer = _task(case, update_every=2)
    with host_shortcuts(False):
        counts = [sum(_step(task, optimizer, x, y).values()) for x, y in _batches(case, 4)]
    assert counts[0] == counts[2] == 0 and counts[1] > 0 and counts[3] > 0, counts  # the refreshes ran there


def _poison_batch(task: RelationClassificationTask, kind: str, bad: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a clean case with a defect in batch `bad`: NaN logits (a forward hook on the model) or a label K."""
    batches = _batches(LossCase("ols", None, "hard"), STEPS)
    if kind == "label":
        x, y = batches[bad]
        batches[bad] = (x, y.clone().index_fill_(0, torch.tensor([1]), K))
        return batches
    calls = [0]

    def nan_logits(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return output.index_fill(1, torch.tensor([0]), float("nan")) if calls[0] == bad + 1 else output

    task.get_eval_model().register_forward_hook(nan_logits)
    return batches


@pytest.mark.parametrize("kind", ["nan_logits", "label"])
@pytest.mark.parametrize("name,top_n", [("ols", None), ("ols", TOP_N), ("lls", None), ("lspp", TOP_N)])
def test_a_mid_epoch_defect_raises_at_the_epoch_end_with_its_batch(name: str, top_n: int | None, kind: str) -> None:
    task, optimizer = _task(LossCase(name, top_n, "hard"))
    with host_shortcuts(False):
        for x, y in _poison_batch(task, kind, bad=1):
            assert _step(task, optimizer, x, y) == {}  # deferred: the steps go on without a sync
        with pytest.raises(ValueError, match=r"defect in batch 1 of this loss \(found at the end of epoch 0;"):
            task.end_epoch()


def test_a_checkpoint_mid_epoch_raises_before_writing(tmp_path: Path) -> None:
    """timm's saver (``--recovery-interval``) reads the task state first: the pending defect raises, no file."""
    task, optimizer = _task(LossCase("lls", None, "hard"))
    saver = CheckpointSaver(task.get_eval_model(), optimizer, task=task, checkpoint_dir=str(tmp_path),
                            recovery_dir=str(tmp_path))
    with host_shortcuts(False):
        for x, y in _poison_batch(task, "nan_logits", bad=0):
            _step(task, optimizer, x, y)
        with pytest.raises(ValueError, match=r"defect in batch 0 .*a state_dict\(\) call"):
            saver.save_recovery(0, batch_idx=STEPS - 1)
    assert list(tmp_path.iterdir()) == []
