"""Issue 22: train.py's --resume checks that the checkpoint's loss state is that checkpoint's epoch (and unchanged)
before timm restores anything; a bad one names the file and the newest good earlier checkpoint beside it."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm.task
import torch
from torch import nn

from hf_labelsmooth import create_loss
from hf_labelsmooth.integrations.timm.launched_task import LaunchedTask
from hf_labelsmooth.integrations.timm.hooks import LaunchState, installed
from hf_labelsmooth.integrations.timm.options import LaunchError, LaunchOptions
from hf_labelsmooth.integrations.timm.resume import verified_resume

RESUME = timm.task.resume_task_checkpoint


def make_task(seed: int = 0) -> LaunchedTask:
    torch.manual_seed(seed)
    return LaunchedTask(nn.Linear(3, 4), create_loss("ols", num_classes=4), seed=0, rank=0)


def save(task: LaunchedTask, path: Path, epoch: int) -> None:
    """As timm's CheckpointSaver (version 2: `epoch` is the epoch just completed)."""
    torch.save({"epoch": epoch, "version": 2, "arch": "linear", **task.get_checkpoint_state()}, path)


@pytest.fixture
def checkpoints(tmp_path) -> Path:
    """checkpoint-0/1/2.pth.tar of a run whose OLS matrix moves at each epoch end."""
    task = make_task()
    for epoch in range(3):
        task.loss.matrix.copy_(torch.softmax(torch.randn(4, 4), dim=-1))
        task.end_epoch()
        save(task, tmp_path / f"checkpoint-{epoch}.pth.tar", epoch)
    return tmp_path


def test_a_good_checkpoint_resumes_its_loss_state(checkpoints) -> None:
    task, saved = make_task(seed=1), torch.load(checkpoints / "checkpoint-2.pth.tar", weights_only=False)
    assert saved["task_state"]["criterion_epoch"] == 2
    assert verified_resume(RESUME, task, str(checkpoints / "checkpoint-2.pth.tar")) == 3
    torch.testing.assert_close(task.loss.matrix, saved["task_state"]["criterion"]["matrix"])
    assert task.completed_epochs == 3


def test_a_loss_state_of_another_epoch_is_refused_naming_the_good_checkpoint(checkpoints) -> None:
    bad = checkpoints / "checkpoint-2.pth.tar"
    copied = torch.load(bad, weights_only=False)
    copied["task_state"] = torch.load(checkpoints / "checkpoint-1.pth.tar", weights_only=False)["task_state"]
    torch.save(copied, bad)
    task = make_task(seed=1)
    before = task.loss.matrix.clone()
    with pytest.raises(LaunchError, match=rf"Expected the loss state of {bad} .*epoch 1 in a checkpoint of epoch 2.*"
                                          rf"--resume {checkpoints / 'checkpoint-1.pth.tar'}"):
        verified_resume(RESUME, task, str(bad))
    torch.testing.assert_close(task.loss.matrix, before)  # nothing restored


def test_a_loss_state_changed_after_its_save_is_refused(checkpoints) -> None:
    bad = checkpoints / "checkpoint-2.pth.tar"
    changed = torch.load(bad, weights_only=False)
    changed["task_state"]["criterion"]["matrix"][0] = torch.tensor([0.7, 0.1, 0.1, 0.1])
    torch.save(changed, bad)
    with pytest.raises(LaunchError, match="do not match the sha256.*checkpoint-1.pth.tar"):
        verified_resume(RESUME, make_task(), str(bad))


def test_a_checkpoint_without_records_resumes_with_a_warning(checkpoints, caplog) -> None:
    old = torch.load(checkpoints / "checkpoint-2.pth.tar", weights_only=False)
    del old["task_state"]["criterion_epoch"], old["task_state"]["criterion_sha256"]
    torch.save(old, checkpoints / "checkpoint-2.pth.tar")
    with caplog.at_level(logging.WARNING):
        assert verified_resume(RESUME, make_task(), str(checkpoints / "checkpoint-2.pth.tar")) == 3
    assert "resumed unverified" in caplog.text


def test_the_launcher_installs_the_check_for_train_py(checkpoints) -> None:
    bad = checkpoints / "checkpoint-2.pth.tar"
    copied = torch.load(bad, weights_only=False)
    copied["epoch"] = 5
    torch.save(copied, bad)
    with installed(LaunchState(LaunchOptions(loss_type="ols"))):
        with pytest.raises(LaunchError, match="epoch 2 in a checkpoint of epoch 5"):
            timm.task.resume_task_checkpoint(make_task(), str(bad))
    assert timm.task.resume_task_checkpoint is RESUME
