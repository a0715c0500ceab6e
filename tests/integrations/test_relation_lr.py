"""The learnable matrix's default learning rate, the warning when it does not move, and its statistics in the final
metrics (issues: LLS / LS++ matrices that stayed uniform in a Hugging Face fine-tune; rows that collapsed from
scratch under the former default max(lr, 0.05))."""
from __future__ import annotations

import logging

import pytest
import torch
from timm.optim import create_optimizer_v2

from hf_labelsmooth import LabelSmoothingTrainer, create_loss
from hf_labelsmooth.integrations.timm import RelationClassificationTask, add_relation_param_group
from hf_labelsmooth.optim import (RELATION_TRAVEL, SGD_RELATION_LR_SCALE, StillMatrixCheck, default_relation_lr,
                                  is_sgd_like)
from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model, train_digits

K = 6
LOGGER = "hf_labelsmooth.optim"


def _max_move(loss) -> float:
    return float(loss.logits.detach().abs().max())  # LS++ / LLS logits start at zero


@pytest.mark.parametrize("name,kwargs,sgd_like", [
    ("sgd", {"momentum": 0.9}, True), ("momentum", {}, True), ("sgdp", {}, True), ("lars", {}, True),
    ("adamw", {}, False), ("adam", {}, False), ("lion", {}, False), ("rmsprop", {}, False), ("adafactor", {}, False),
    ("lamb", {}, False)])
def test_optimizer_family_sets_the_default(name: str, kwargs: dict, sgd_like: bool) -> None:
    optimizer = create_optimizer_v2(torch.nn.Linear(4, K), opt=name, lr=1e-4, **kwargs)
    assert is_sgd_like(optimizer) is sgd_like
    assert is_sgd_like(type(optimizer)) is sgd_like
    expected = 1e-4 * SGD_RELATION_LR_SCALE if sgd_like else RELATION_TRAVEL / 200
    assert default_relation_lr(optimizer, 1e-4, total_steps=200) == pytest.approx(expected)
    assert default_relation_lr(torch.optim.AdamW, 0.5, total_steps=200) == 0.5  # never slower than the network


@pytest.mark.parametrize("lr,steps,expected", [
    (5e-5, 200, 0.015),  # a fine-tune: 200 steps at 5e-5 would move a logit by 0.01, the default travels 3
    (3e-3, 756, 3 / 756),  # from scratch (the FSDD wav2vec2 run): ~the network's 3e-3, not the former 0.05
    (3e-3, 100_000, 3e-3),  # a long run: the network's lr already travels far enough
    (1e-4, None, 1e-4)])  # length unknown: the network's lr (uniform smoothing at worst, and a warning says so)
def test_adam_default_gives_the_matrix_a_fixed_travel(lr: float, steps: int | None, expected: float) -> None:
    assert default_relation_lr(torch.optim.AdamW, lr, total_steps=steps) == pytest.approx(expected)
    if steps is not None and expected > lr:
        assert default_relation_lr(torch.optim.AdamW, lr, total_steps=steps) * steps == pytest.approx(RELATION_TRAVEL)


@pytest.mark.parametrize("opt,lr,expected", [("sgd", 0.1, 0.1 * SGD_RELATION_LR_SCALE),
                                             ("adamw", 1e-3, RELATION_TRAVEL / 500)])
def test_timm_group_takes_the_default_lr(opt: str, lr: float, expected: float) -> None:
    loss = create_loss("lls", num_classes=K)
    optimizer = create_optimizer_v2(torch.nn.Linear(4, K), opt=opt, lr=lr)
    assert add_relation_param_group(optimizer, loss, total_steps=500)["lr"] == pytest.approx(expected)
    assert add_relation_param_group(create_optimizer_v2(torch.nn.Linear(4, K), opt=opt, lr=lr), loss, lr=0.3)["lr"] \
        == 0.3


@pytest.mark.parametrize("optim,expected", [("adamw_torch", RELATION_TRAVEL / 40),
                                            ("sgd", 5e-5 * SGD_RELATION_LR_SCALE)])
def test_trainer_group_takes_the_default_lr(tmp_path, optim: str, expected: float) -> None:
    """The default follows the run's length (the steps the Trainer schedules), and the schedule scales it."""
    args = digits_args(str(tmp_path), "lspp", 32, learning_rate=5e-5, relation_lr=None, optim=optim)
    trainer = LabelSmoothingTrainer(model=tiny_model(), args=args, train_dataset=DigitsDataset(64))
    trainer.create_optimizer_and_scheduler(num_training_steps=40)
    group = trainer.relation_optimizer.optimizer.param_groups[0]  # the matrix's own optimizer
    assert group["name"] == "relation_matrix" and group["initial_lr"] == pytest.approx(expected)
    assert trainer.relation_optimizer.lr == pytest.approx(expected)
    trainer.relation_optimizer.step()  # no gradient yet: nothing moves, the schedule may step
    trainer.relation_optimizer.step_schedule()  # linear decay over the 40 steps
    assert group["lr"] == pytest.approx(expected * 39 / 40)


@pytest.mark.parametrize("method", ["lls", "lspp"])
def test_default_trainer_run_moves_the_matrix(tmp_path, caplog, method: str) -> None:
    """A fine-tuning learning rate and no relation_lr: the matrix learns; the old default (the network's lr) did not,
    and the warning says so once, naming --relation_lr."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer = train_digits(str(tmp_path / "default"), method, learning_rate=5e-5, relation_lr=None,
                               num_train_epochs=2)
    assert _max_move(trainer.relation_loss) > 0.1
    matrix = trainer.relation_loss.relation_matrix()
    start = create_loss(method, num_classes=10).relation_matrix()
    assert float((matrix - start).abs().max()) > 0.01  # visibly not uniform
    assert not [r for r in caplog.records if r.name == LOGGER]
    metrics = trainer.state.log_history[-1]  # the summary `train()` returns, logged last
    assert metrics["relation_entropy"] < float(-(start * start.clamp_min(1e-12).log()).sum(-1).mean())
    assert {"train_loss", "relation_entropy", "relation_offdiag_mass"} <= set(metrics)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        still = train_digits(str(tmp_path / "old"), method, learning_rate=5e-5, relation_lr=5e-5, num_train_epochs=2)
    assert _max_move(still.relation_loss) < 0.01
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "--relation_lr" in warnings[0] and "applied in this epoch: 5e-05" in warnings[0]


def test_final_metrics_hold_the_matrix_statistics(tmp_path) -> None:
    trainer = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(64),
                                    args=digits_args(str(tmp_path), "lls", 32, num_train_epochs=1))
    metrics = trainer.train().metrics
    matrix = trainer.relation_loss.relation_matrix()
    entropy = float(-(matrix * matrix.log()).sum(-1).mean())
    assert metrics["relation_entropy"] == pytest.approx(entropy, rel=1e-5)
    assert metrics["relation_offdiag_mass"] == pytest.approx(float(1 - matrix.diagonal().mean()), rel=1e-5)


def test_still_check_warns_once_and_restarts(caplog) -> None:
    loss = create_loss("lspp", num_classes=K)
    check = StillMatrixCheck(loss, flag="--relation-lr")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with torch.no_grad():
            loss.logits.add_(0.005)  # below the threshold: not moved
        assert check.moved() == pytest.approx(0.005) and check.check(1)
        assert not check.check(2)  # once
    assert len(caplog.records) == 1 and "--relation-lr" in caplog.records[0].getMessage()
    moving = StillMatrixCheck(loss)
    with torch.no_grad():
        loss.logits[0, 1] -= 0.5
    assert moving.moved() == pytest.approx(0.5) and not moving.check(1)
    moving.start()
    assert moving.moved() == 0.0
    assert not StillMatrixCheck(create_loss("ols", num_classes=K)).check(1)  # nothing to learn by gradient


def test_timm_task_warns_when_the_matrix_did_not_move(caplog) -> None:
    task = RelationClassificationTask(torch.nn.Linear(4, K), create_loss("lls", num_classes=K), verbose=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        task.end_epoch()
        task.end_epoch()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1 and "--relation-lr" in messages[0] and "'lls'" in messages[0]
    moved = RelationClassificationTask(torch.nn.Linear(4, K), create_loss("lls", num_classes=K), verbose=False)
    with torch.no_grad():
        moved.loss.logits.fill_(1.0).diagonal().zero_()
    resumed = RelationClassificationTask(torch.nn.Linear(4, K), create_loss("lls", num_classes=K), verbose=False)
    resumed.load_task_state(moved.get_task_state())  # judged from the restored matrix, which then stays put
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        moved.end_epoch()
        assert len([r for r in caplog.records if r.name == LOGGER]) == 1
        resumed.end_epoch()
    assert len([r for r in caplog.records if r.name == LOGGER]) == 2


def test_trainer_reports_a_collapsed_matrix_once(tmp_path, caplog) -> None:
    """A matrix lr far too large for the run: rows collapse onto single classes; the guard says so once, with the
    cause and the option to lower, and the final metrics hold the largest off-diagonal entry."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer = train_digits(str(tmp_path), "lls", learning_rate=5e-5, relation_lr=5.0, num_train_epochs=2)
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "has collapsed after epoch 1" in warnings[0]
    assert "lower `--relation_lr`" in warnings[0]
    matrix = trainer.relation_loss.relation_matrix()
    largest = float(matrix.masked_fill(torch.eye(10, dtype=torch.bool), 0).max())
    assert trainer.state.log_history[-1]["relation_max_offdiag"] == pytest.approx(largest, rel=1e-5)


def test_trainer_at_alpha_zero_names_alpha(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer = train_digits(str(tmp_path), "lls", relation_lr=None, label_smoothing_alpha=0.0, num_train_epochs=1)
    assert _max_move(trainer.relation_loss) == 0.0
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "alpha is 0, which gives the matrix no gradient" in warnings[0]
    assert "`--label_smoothing_alpha`" in warnings[0] and "--relation_lr" not in warnings[0]
