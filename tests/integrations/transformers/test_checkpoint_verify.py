"""Issue 22: a checkpoint is verified on resume (loss files against trainer_state.json, their digests, their values,
the folder complete); a bad one is refused naming it and the newest good earlier checkpoint of the output_dir."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from hf_labelsmooth import LabelSmoothingTrainer, create_loss
from hf_labelsmooth.integrations.transformers.checkpoint import LOSS_STATE_FILE, OPTIMIZER_STATE_FILE, \
    LossCheckpoint, check_resumable, load_loss_state, save_loss_state
from hf_labelsmooth._io import read_tensor_record, write_tensors
from tests.support.stock_trainer import stock_trainer
from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model

N_TRAIN, BATCH = 64, 16  # 4 steps per epoch, 2 epochs: checkpoint-2, -4, -6, -8


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One saved run per method (checkpoints every 2 steps), copied by each test before it breaks one."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for method in ("ols", "lls"):
        trainer = LabelSmoothingTrainer(model=tiny_model(), args=saving_args(root / method, method),
                                        train_dataset=DigitsDataset(N_TRAIN))
        trainer.train()
        out[method] = root / method
    return out


def saving_args(out: Path, method: str):
    return digits_args(str(out), method, BATCH, save_strategy="steps", save_steps=2)


@pytest.fixture
def run(runs, tmp_path, request) -> Path:
    method = getattr(request, "param", "lls")
    return Path(shutil.copytree(runs[method], tmp_path / method))


def resume(out: Path, method: str, checkpoint: str | bool) -> None:
    trainer = LabelSmoothingTrainer(model=tiny_model(seed=1), args=saving_args(out, method),
                                    train_dataset=DigitsDataset(N_TRAIN))
    trainer.train(resume_from_checkpoint=checkpoint)


def refused(out: Path, method: str, checkpoint: str | bool, *phrases: str) -> str:
    with pytest.raises(ValueError) as info:
        resume(out, method, checkpoint)
    message = str(info.value)
    assert message.startswith("Expected") and "\n" not in message
    assert "delete" not in message
    for phrase in phrases:
        assert phrase in message, message
    return message


@pytest.mark.parametrize("run", ["ols", "lls"], indirect=True)
def test_a_loss_state_copied_from_an_earlier_checkpoint_is_refused(run) -> None:
    method = run.name
    shutil.copy(run / "checkpoint-2" / LOSS_STATE_FILE, run / "checkpoint-8" / LOSS_STATE_FILE)
    refused(run, method, str(run / "checkpoint-8"), str(run / "checkpoint-8"), "recorded at global_step 2",
            "says 8", f"--resume_from_checkpoint {run / 'checkpoint-6'}")


def test_an_optimizer_state_copied_from_an_earlier_checkpoint_is_refused(run) -> None:
    shutil.copy(run / "checkpoint-2" / OPTIMIZER_STATE_FILE, run / "checkpoint-8" / OPTIMIZER_STATE_FILE)
    refused(run, "lls", str(run / "checkpoint-8"), OPTIMIZER_STATE_FILE, "recorded at global_step 2",
            f"--resume_from_checkpoint {run / 'checkpoint-6'}")


def test_the_stock_trainer_refuses_a_copied_loss_state(run) -> None:
    shutil.copy(run / "checkpoint-2" / LOSS_STATE_FILE, run / "checkpoint-8" / LOSS_STATE_FILE)
    trainer = stock_trainer(str(run), "lls", batch=BATCH, n_train=N_TRAIN, save_strategy="steps", save_steps=2)
    with pytest.raises(ValueError, match=r"recorded at global_step 2 .*--resume_from_checkpoint .*checkpoint-6"):
        trainer.train(resume_from_checkpoint=str(run / "checkpoint-8"))


def test_tensors_changed_after_the_save_are_refused(run) -> None:
    path = run / "checkpoint-8" / LOSS_STATE_FILE
    tensors, metadata, _ = read_tensor_record(path)
    tensors = {k: v + 1e-3 if v.is_floating_point() else v for k, v in tensors.items()}
    write_tensors(path, tensors, metadata)  # the old records, new values
    refused(run, "lls", str(run / "checkpoint-8"), "do not match the sha256", "checkpoint-6")


@pytest.mark.parametrize("run", ["ols"], indirect=True)
def test_an_ols_matrix_of_negative_values_is_refused_naming_the_file(run) -> None:
    path = run / "checkpoint-8" / LOSS_STATE_FILE
    loss = create_loss("ols", num_classes=10)
    assert load_loss_state(loss, run / "checkpoint-8")
    loss.matrix.fill_(-3.0)
    save_loss_state(loss, path.parent, step=8)  # consistent records: only the values are wrong
    refused(run, "ols", str(run / "checkpoint-8"), str(path), "matrix", "--resume_from_checkpoint")
    with pytest.raises(ValueError, match=str(path)):
        load_loss_state(create_loss("ols", num_classes=10), path.parent)


@pytest.mark.parametrize("broken", ["missing state", "truncated state", "missing weights"])
def test_a_checkpoint_left_incomplete_by_a_kill_names_the_good_one(run, broken: str) -> None:
    folder = run / "checkpoint-8"
    if broken == "missing state":
        (folder / "trainer_state.json").unlink()
    elif broken == "truncated state":
        (folder / "trainer_state.json").write_text('{"global_step": 8, "log_hi')
    else:
        (folder / "model.safetensors").unlink()
    for checkpoint in (str(folder), True):  # True: the newest checkpoint of output_dir, as transformers resolves it
        refused(run, "lls", checkpoint, str(folder), "incomplete", f"--resume_from_checkpoint {run / 'checkpoint-6'}")


@pytest.mark.parametrize("name", [LOSS_STATE_FILE, OPTIMIZER_STATE_FILE])
@pytest.mark.parametrize("size", [0, 100])
def test_a_truncated_or_empty_state_file_is_named(run, name: str, size: int) -> None:
    path = run / "checkpoint-8" / name
    path.write_bytes(path.read_bytes()[:size])
    refused(run, "lls", str(path.parent), f"corrupt or truncated {name}", "checkpoint-6")
    if name == LOSS_STATE_FILE:
        with pytest.raises(ValueError, match=rf"{name} in checkpoint {path.parent} but got a corrupt or truncated"):
            load_loss_state(create_loss("lls", num_classes=10), path.parent)


def test_no_good_earlier_checkpoint_names_a_new_output_dir(run) -> None:
    for folder in run.glob("checkpoint-*"):
        (folder / "model.safetensors").unlink()
    refused(run, "lls", str(run / "checkpoint-4"), "No earlier checkpoint", "new --output_dir")


def test_another_methods_checkpoint_names_no_deletion(run) -> None:
    with pytest.raises(ValueError) as info:
        check_resumable(run / "checkpoint-8", "ols")
    assert "delete" not in str(info.value) and "new --output_dir" in str(info.value)


def test_a_checkpoint_without_records_resumes_with_a_warning(run, caplog) -> None:
    folder = run / "checkpoint-8"
    for name in (LOSS_STATE_FILE, OPTIMIZER_STATE_FILE):  # as written before the records existed
        tensors, metadata, _ = read_tensor_record(folder / name)
        write_tensors(folder / name, tensors, {k: v for k, v in metadata.items()
                                              if k not in ("global_step", "tensor_sha256")})
    checkpoint = LossCheckpoint(create_loss("lls", num_classes=10), lambda: None)
    with caplog.at_level(logging.WARNING):
        checkpoint.check_resumable(folder)
    assert "resumed unverified" in caplog.text


def test_saved_records_match_the_trainer_state(run) -> None:
    for folder in run.glob("checkpoint-*"):
        step = json.loads((folder / "trainer_state.json").read_text())["global_step"]
        for name in (LOSS_STATE_FILE, OPTIMIZER_STATE_FILE):
            assert read_tensor_record(folder / name)[1]["global_step"] == str(step)
    assert LossCheckpoint(create_loss("lls", num_classes=10), lambda: None).defect(run / "checkpoint-8") is None
