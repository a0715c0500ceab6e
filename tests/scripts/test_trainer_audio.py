"""run_audio_classification.py end to end: a small Wav2Vec2 from a config on real spoken digits (FSDD, 8 kHz)."""
from __future__ import annotations

import pytest

from tests.support.trainer_data import FSDD, make_fsdd_folders, make_tiny_wav2vec2, requires_shared
from tests.support.trainer_scripts import check_method_result, run_script

pytestmark = [pytest.mark.slow, requires_shared(FSDD)]


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    make_fsdd_folders(root / "data", speakers=("george",), max_index=12)  # 70 train, 50 validation clips
    return root / "data", make_tiny_wav2vec2(root / "model")


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lspp", "lls"])
def test_audio_script_each_method(tmp_path, fsdd, monkeypatch, method: str) -> None:
    data, model = fsdd
    argv = ["--model_name_or_path", str(model), "--train_dir", str(data / "train"),
            "--validation_dir", str(data / "validation"), "--max_length_seconds", "1", "--freeze_feature_encoder",
            "False", "--output_dir", str(tmp_path), "--label_smoothing_method", method, "--num_train_epochs", "4",
            "--per_device_train_batch_size", "16", "--learning_rate", "3e-3", "--relation_lr", "0.05"]
    result = run_script("run_audio_classification", argv, monkeypatch)
    check_method_result(method, result, num_classes=10)
    if method not in ("ce", "ls"):  # the methods that learn a matrix save it with the dataset's label names
        assert result["label_names"] == [str(d) for d in range(10)]
