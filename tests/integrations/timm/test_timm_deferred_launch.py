"""End-to-end through timm's own train.py (the launcher, in this process) on the accelerator path: NaN logits in one
mid-epoch batch are raised with that batch's index at the epoch end, or at a recovery checkpoint, before train.py's
saver writes any file."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm.models
import torch

from hf_labelsmooth.integrations.timm.launcher import launch
from hf_labelsmooth.losses.functional import host_shortcuts
from tests.support.digits import write_digits_imagefolder
from tests.support.paths import timm_train_py

TRAIN_PY = timm_train_py()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(TRAIN_PY is None, reason="timm's train.py not found: set TIMM_TRAIN_PY to its path")]
ARGS = ["--device", "cpu", "--model", "test_efficientnet_gn", "--num-classes", "10", "--img-size", "16",
        "--crop-pct", "1.0", "--warmup-epochs", "0", "--workers", "0", "--log-interval", "100", "-b", "32",
        "--epochs", "2", "--no-aug", "--loss-type", "ols"]  # 7 steps per epoch
BAD = 2  # the training batch whose logits hold a NaN


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    write_digits_imagefolder(root, train_per_class=24, val_per_class=8)
    return root


@pytest.fixture
def nan_in_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """train.py's model returns a NaN logit in training batch `BAD` (train.py imports create_model when it runs)."""
    create_model = timm.models.create_model

    def poisoned(*args, **kwargs) -> torch.nn.Module:
        model, calls = create_model(*args, **kwargs), [0]

        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not module.training:
                return output
            calls[0] += 1
            return output.index_fill(1, torch.tensor([3]), float("nan")) if calls[0] == BAD + 1 else output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(timm.models, "create_model", poisoned)


@pytest.mark.parametrize("extra,where", [([], r"the end of epoch 0"),
                                         (["--recovery-interval", "4"], r"a state_dict\(\) call \(a save\)")])
def test_a_mid_epoch_defect_raises_before_train_py_writes_a_checkpoint(
        data: Path, tmp_path: Path, nan_in_batch: None, extra: list[str], where: str) -> None:
    torch.set_num_threads(1)
    args = ["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "run", *ARGS, *extra]
    with host_shortcuts(False), pytest.raises(ValueError, match=rf"defect in batch {BAD} of this loss \(found at "
                                                                 rf"{where};"):
        launch(TRAIN_PY, args)
    written = [p.name for p in (tmp_path / "run").iterdir()]
    assert not [name for name in written if name.endswith(".pth.tar")], written
    assert "args.yaml" in written  # train.py did start and write into its folder
