"""`MatrixCheck`: the collapse guard (issue 25) and a not-moved warning that is true (issue 21): it judges the lr
applied in the epoch (a warmup epoch is not judged) and names alpha 0 as the cause when alpha is 0."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from hf_labelsmooth import create_loss
from hf_labelsmooth.integrations.timm import RelationClassificationTask
from hf_labelsmooth.integrations.timm.hooks import LaunchState
from hf_labelsmooth.integrations.timm.options import LaunchOptions
from hf_labelsmooth.matrix_check import COLLAPSE_THRESHOLD, MatrixCheck, collapse_stats
from hf_labelsmooth.metrics import relation_stats

K = 5
LOGGER = "hf_labelsmooth.optim"


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _collapse(loss, rows: range, strength: float) -> None:
    """Logits that put most of each row's mass on the next class (LLS: R = softmax of the logits)."""
    with torch.no_grad():
        for i in rows:
            loss.logits[i, (i + 1) % K] = strength


def test_collapsed_rows_are_reported_once_with_cause_and_fix(caplog) -> None:
    loss = create_loss("lls", num_classes=K)
    check = MatrixCheck(loss, flag="--relation_lr")
    _collapse(loss, range(K), 1.0)  # e / (e + 4) = 0.40 per row: related, not collapsed
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert not check.check(1)
        _collapse(loss, range(3), 3.0)  # e^3 / (e^3 + 4) = 0.83 on rows 0-2
        assert check.check(2)
        assert not check.check(3)  # once
    (message,) = _messages(caplog)
    assert "has collapsed after epoch 2" in message and "3 of 5 rows" in message and "0.83" in message
    assert "lower `--relation_lr`" in message and "too large" in message


def test_collapse_stats_and_the_metric() -> None:
    matrix = torch.tensor([[0.2, 0.7, 0.1], [0.3, 0.4, 0.3], [0.05, 0.45, 0.5]])
    assert collapse_stats(matrix) == {"max_offdiag": pytest.approx(0.7), "collapsed_rows": 1}
    assert relation_stats(matrix)["relation_max_offdiag"] == pytest.approx(0.7)
    assert relation_stats(torch.eye(3))["relation_max_offdiag"] == 0.0
    assert COLLAPSE_THRESHOLD == 0.5


def test_warmup_epoch_is_not_judged(caplog) -> None:
    """timm's warmup runs epoch 1 at 1e-5 by design: no warning then; the first epoch at the real lr is judged."""
    loss = create_loss("lspp", num_classes=K)
    check = MatrixCheck(loss, flag="--relation-lr")
    group = {"params": [loss.logits], "lr": 1e-5, "initial_lr": 0.5}
    check.follow(group)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        check.observe()
        assert not check.check(1)
        group["lr"] = 0.5
        check.observe()
        assert check.check(2)
    (message,) = _messages(caplog)
    assert "after epoch 2" in message and "Raise `--relation-lr` (applied in this epoch: 0.5)" in message


def test_alpha_zero_names_alpha_not_the_lr(caplog) -> None:
    loss = create_loss("lls", num_classes=K, alpha=0.0)
    check = MatrixCheck(loss, flag="--relation_lr", alpha_flag="--label_smoothing_alpha")
    check.follow({"params": [loss.logits], "lr": 1e-5, "initial_lr": 0.5})  # even in a warmup epoch
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert check.check(1)
    (message,) = _messages(caplog)
    assert "alpha is 0, which gives the matrix no gradient" in message and "`--label_smoothing_alpha`" in message
    assert "--relation_lr" not in message


def test_alpha_zero_gives_the_matrix_no_gradient() -> None:
    """The fact the warning states."""
    loss = create_loss("lls", num_classes=K, alpha=0.0)
    loss(torch.randn(8, K, requires_grad=True), torch.randint(0, K, (8,))).backward()
    assert loss.logits.grad is None or float(loss.logits.grad.abs().max()) == 0.0


def test_timm_task_skips_warmup_epochs(caplog) -> None:
    task = RelationClassificationTask(torch.nn.Linear(4, K), create_loss("lls", num_classes=K), verbose=False)
    group = {"params": [], "lr": 1e-5, "initial_lr": 0.5}
    task.follow_lr(group)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        task.observe_lr()
        task.end_epoch()  # warmup: not judged
        assert not _messages(caplog)
        group["lr"] = 0.4
        task.observe_lr()
        task.end_epoch()
    (message,) = _messages(caplog)
    assert "after epoch 2" in message and "--relation-lr" in message and "applied in this epoch: 0.4" in message


@pytest.mark.parametrize("epochs,cooldown,accum,expected", [(30, 0, 1, 300), (30, 2, 1, 320), (30, 0, 3, 120)])
def test_timm_launcher_counts_the_runs_steps(epochs: int, cooldown: int, accum: int, expected: int) -> None:
    """train.py's optimizer steps: updates per epoch (loader batches / accumulation, rounded up) × scheduled epochs."""
    state = LaunchState(LaunchOptions(loss_type="lls"))
    assert state.total_steps() is None  # before the training loader: the default falls back to the network's lr
    state.args = SimpleNamespace(epochs=epochs, cooldown_epochs=cooldown, grad_accum_steps=accum)
    state.train_loader = list(range(10))  # 10 batches
    assert state.total_steps() == expected


def test_timm_launcher_wires_the_default_lr_and_the_warmup_check(caplog) -> None:
    """train.py's optimizer through the launcher's hook: the matrix group gets max(lr, 3 / total steps) for AdamW,
    and the task judges the lr that group applies, so timm's warmup epoch (1e-5 by design) draws no warning."""
    from hf_labelsmooth.integrations.timm.hooks import LaunchedTask

    state = LaunchState(LaunchOptions(loss_type="lls"))
    state.args = SimpleNamespace(epochs=3, cooldown_epochs=0, grad_accum_steps=1)
    state.train_loader = list(range(10))
    state.task = LaunchedTask(torch.nn.Linear(4, K), create_loss("lls", num_classes=K), seed=0, rank=0, verbose=False)
    optimizer = state.create_optimizer(lambda m, **kw: torch.optim.AdamW(m.parameters(), **kw),
                                       state.task.trainable_module, lr=1e-3, weight_decay=0.0)
    group = optimizer.param_groups[-1]
    assert group["name"] == "relation_matrix" and group["lr"] == pytest.approx(3 / 30)
    group["initial_lr"], group["lr"] = group["lr"], 1e-5  # as timm's scheduler sets the warmup epoch
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        state.task.start_epoch()
        state.task.end_epoch()
        assert not _messages(caplog)
        group["lr"] = group["initial_lr"]
        state.task.start_epoch()
        state.task.end_epoch()
    (message,) = _messages(caplog)
    assert "after epoch 2" in message and "applied in this epoch: 0.1" in message
