"""The `evaluate` ECE metric: same value as `expected_calibration_error`, batching, loading by path offline."""
from __future__ import annotations

import evaluate
import pytest
import torch

import hf_labelsmooth.metrics.ece_metric as ece_module
from hf_labelsmooth.metrics.functional import expected_calibration_error
from hf_labelsmooth.metrics.ece_metric import ExpectedCalibrationError


def _data(n: int = 64, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, k).mul(2).softmax(-1), torch.randint(0, k, (n,))


def test_hand_computed_value() -> None:
    # confidences 0.9 (right) and 0.6 (wrong) fall in different bins: (|1-0.9| + |0-0.6|) / 2 = 0.35
    probs = [[0.9, 0.1], [0.4, 0.6]]
    assert ExpectedCalibrationError().compute(predictions=probs, references=[0, 0])["ece"] == pytest.approx(0.35)


def test_matches_function_and_batches_accumulate() -> None:
    probs, labels = _data()
    expected = expected_calibration_error(probs, labels, n_bins=10)
    metric = ExpectedCalibrationError()
    for start in range(0, 64, 16):
        metric.add_batch(predictions=probs[start:start + 16].numpy(), references=labels[start:start + 16].numpy())
    assert metric.compute(n_bins=10)["ece"] == pytest.approx(expected, abs=1e-6)


def test_from_logits_and_rejects_unnormalised_rows() -> None:
    logits, labels = torch.randn(20, 3), torch.randint(0, 3, (20,))
    got = ExpectedCalibrationError().compute(predictions=logits.numpy(), references=labels.numpy(), from_logits=True)
    assert got["ece"] == pytest.approx(expected_calibration_error(logits.softmax(-1), labels), abs=1e-6)
    with pytest.raises(ValueError, match="from_logits"):
        ExpectedCalibrationError().compute(predictions=(logits.abs() + 1).numpy(), references=labels.numpy())


def test_evaluate_load_by_file_path_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(ece_module.__file__)
    probs, labels = _data(30, 4)
    assert type(metric).__name__ == "ExpectedCalibrationError"
    assert metric.compute(predictions=probs.numpy(), references=labels.numpy())["ece"] == pytest.approx(
        expected_calibration_error(probs, labels), abs=1e-6)
