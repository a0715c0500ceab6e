"""Stochastic Label Refinery core: M step, folds, resume after a crash, regression targets, SLR-a/-e averaging."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value

from hf_labelsmooth import create_loss
from hf_labelsmooth.losses.soft_kl import soft_value_loss
from hf_labelsmooth.slr import StochasticLabelRefinery, make_folds, m_step
from hf_labelsmooth.slr.checkpoint import column_array, load_state

K = 4


def _dataset(num: int = 23, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    features = Features({"idx": Value("int64"), "x": Value("float32"), "label": ClassLabel(num_classes=K)})
    return Dataset.from_dict({"idx": list(range(num)), "x": rng.normal(size=num).tolist(),
                              "label": rng.integers(0, K, num).tolist()}, features=features)


def _fixed_predictions(num: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=num)


class Recorder:
    """train_fn / predict_fn pair whose "model" is the mean training label plus a seed-dependent jitter."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[dict] = []
        self.fail_at = fail_at

    def train(self, dataset: Dataset, seed: int) -> dict:
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("simulated crash")
        labels = column_array(dataset, "soft_label")
        self.calls.append({"train_idx": set(dataset["idx"]), "seed": seed})
        jitter = np.random.default_rng(seed).dirichlet(np.ones(K))
        return {"mean": labels.mean(axis=0), "jitter": jitter, "weight": np.random.default_rng(seed).random()}

    def predict(self, model: dict, dataset: Dataset) -> np.ndarray:
        assert "soft_label" not in dataset.column_names  # held-out labels are never shown to predict_fn
        self.calls[-1]["val_idx"] = set(dataset["idx"])
        x = np.asarray(dataset["x"])[:, None]
        logits = np.log(model["mean"] + 1e-3) + model["weight"] * x * np.arange(K) + np.log(model["jitter"])
        return torch.tensor(logits).softmax(-1).numpy()


def test_m_step_matches_hand_computation() -> None:
    labels = np.array([[1.0, 0.0, 0.0], [0.25, 0.5, 0.25]])
    preds = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    expected = np.array([[(3 * 1 + 0.2) / 4, 0.5 / 4, 0.3 / 4], [0.75 / 4, 1.5 / 4, (0.75 + 1) / 4]])
    np.testing.assert_allclose(m_step(labels, preds, 3), expected, rtol=1e-6)
    np.testing.assert_allclose(m_step(np.array([2.0]), np.array([3.0]), 1), [2.5])
    with pytest.raises(ValueError, match="Expected predictions of shape"):
        m_step(labels, preds[:, :2], 3)


def test_refinery_applies_m_step_each_round() -> None:
    ds, preds = _dataset(), _fixed_predictions(23)
    refinery = StochasticLabelRefinery(lambda d, s: None, lambda m, d: preds[np.asarray(d["idx"])], k=3, n=3, rounds=2)
    out = column_array(refinery.run(ds), "soft_label")
    one_hot = np.eye(K)[np.asarray(ds["label"])]
    round1 = (3 * one_hot + preds) / 4
    np.testing.assert_allclose(out, (3 * round1 + preds) / 4, rtol=1e-5)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_folds_disjoint_and_cover() -> None:
    folds = make_folds(103, 5, seed=7)
    assert sorted(np.concatenate(folds).tolist()) == list(range(103))
    assert {len(f) for f in folds} <= {20, 21}
    assert not np.array_equal(np.concatenate(make_folds(103, 5, seed=8)), np.concatenate(folds))
    with pytest.raises(ValueError, match="Expected k"):
        make_folds(3, 5, seed=0)
    rec = Recorder()
    StochasticLabelRefinery(rec.train, rec.predict, k=4, rounds=2, seed=3).run(_dataset(30))
    assert len(rec.calls) == 8
    for round_calls in (rec.calls[:4], rec.calls[4:]):
        vals = [c["val_idx"] for c in round_calls]
        assert set().union(*vals) == set(range(30)) and sum(map(len, vals)) == 30  # cover, disjoint
        assert all(c["train_idx"] == set(range(30)) - c["val_idx"] for c in round_calls)
    assert [c["val_idx"] for c in rec.calls[:4]] != [c["val_idx"] for c in rec.calls[4:]]  # reshuffled per round
    assert len({c["seed"] for c in rec.calls}) == 8


def test_resume_after_interrupted_round(tmp_path) -> None:
    ds = _dataset(40)
    settings = dict(k=5, n=3, rounds=3, seed=11)
    reference = Recorder()
    expected = column_array(StochasticLabelRefinery(reference.train, reference.predict, output_dir=tmp_path / "a",
                                                    **settings).run(ds), "soft_label")
    crashing = Recorder(fail_at=7)  # round 2, third fold
    with pytest.raises(RuntimeError, match="simulated crash"):
        StochasticLabelRefinery(crashing.train, crashing.predict, output_dir=tmp_path / "b", **settings).run(ds)
    assert load_state(tmp_path / "b")["rounds_done"] == 1
    resumed = Recorder()
    out = StochasticLabelRefinery(resumed.train, resumed.predict, output_dir=tmp_path / "b", **settings).run(ds)
    assert len(resumed.calls) == 10  # rounds 2 and 3 only
    assert [c["seed"] for c in resumed.calls] == [c["seed"] for c in reference.calls[5:]]
    np.testing.assert_array_equal(column_array(out, "soft_label"), expected)
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["rounds_done"] == 3 and not list((tmp_path / "b").glob("*.tmp-*"))
    with pytest.raises(ValueError, match="Expected the checkpoint .* k=4"):
        StochasticLabelRefinery(resumed.train, resumed.predict, output_dir=tmp_path / "b",
                                **{**settings, "k": 4}).run(ds)
    more = Recorder()  # asking for more rounds continues from the last one
    StochasticLabelRefinery(more.train, more.predict, output_dir=tmp_path / "b", **{**settings, "rounds": 4}).run(ds)
    assert len(more.calls) == 5 and load_state(tmp_path / "b")["rounds_done"] == 4
    with pytest.raises(ValueError, match="given_labels_sha256"):  # another dataset of the same size
        refinery = StochasticLabelRefinery(resumed.train, resumed.predict, output_dir=tmp_path / "b", **settings)
        refinery.run(_dataset(40, 5))


def test_regression_targets(tmp_path) -> None:
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 0.0], dtype=np.float32)
    ds = Dataset.from_dict({"idx": list(range(8)), "grade": values.tolist()})
    preds = np.linspace(0.5, 3.5, 8)
    refinery = StochasticLabelRefinery(lambda d, s: None, lambda m, d: preds[np.asarray(d["idx"])][:, None], k=2,
                                       rounds=1, task="regression", label_column="grade", output_dir=tmp_path)
    out = refinery.run(ds)
    assert out.features["soft_label"] == Value("float32")
    np.testing.assert_allclose(column_array(out, "soft_label"), (3 * values + preds) / 4, rtol=1e-6)
    pred, target = torch.tensor([[1.0], [2.0]], requires_grad=True), torch.tensor([1.5, 2.0])
    assert soft_value_loss(pred, target).item() == pytest.approx(0.125)
    with pytest.raises(ValueError, match="Expected predictions of the targets' shape"):
        soft_value_loss(torch.zeros(2, 3), target)


def test_ensemble_and_tta_average_predictions() -> None:
    ds, calls = _dataset(12), []

    def predict(model: int, d: Dataset) -> np.ndarray:
        calls.append((model, "flip" in d.column_names))
        out = np.full((len(d), K), 0.1)
        out[:, (model % 2) * 2 + int("flip" in d.column_names)] = 0.7
        return out

    flip = lambda d: d.add_column("flip", [1] * len(d))  # noqa: E731
    refinery = StochasticLabelRefinery([lambda d, s: 0, lambda d, s: 1], predict, k=3, rounds=1, ensemble=2, tta=[flip])
    out = column_array(refinery.run(ds), "soft_label")
    assert len(calls) == 3 * 2 * 2 * 2  # folds × train functions × members × views
    np.testing.assert_allclose(out, (3 * np.eye(K)[np.asarray(ds["label"])] + 0.25) / 4, rtol=1e-6)


def test_predict_fn_must_return_probabilities() -> None:
    refinery = StochasticLabelRefinery(lambda d, s: None, lambda m, d: np.ones((len(d), K)), k=2, rounds=1)
    with pytest.raises(ValueError, match="Apply softmax"):
        refinery.run(_dataset(6))


def test_soft_kl_loss() -> None:
    torch.manual_seed(0)
    logits, soft = torch.randn(5, K, requires_grad=True), torch.rand(5, K).softmax(-1)
    loss = create_loss("soft_kl", K)
    expected = F.kl_div(logits.log_softmax(-1), soft, reduction="batchmean")
    torch.testing.assert_close(loss(logits, soft), expected)
    assert loss(soft.log(), soft).item() == pytest.approx(0.0, abs=1e-6)
    grad_kl, = torch.autograd.grad(loss(logits, soft), logits)
    grad_ce, = torch.autograd.grad(F.cross_entropy(logits, soft), logits)
    torch.testing.assert_close(grad_kl, grad_ce)
    torch.testing.assert_close(loss.relation_matrix(), torch.eye(K))
    with pytest.raises(ValueError, match="Expected `alpha` = 0"):
        create_loss("soft_kl", K, alpha=0.1)


def test_top_level_export_is_lazy() -> None:
    code = ("import sys, hf_labelsmooth as h; assert 'transformers' not in sys.modules and 'timm' not in sys.modules; "
            "from hf_labelsmooth import StochasticLabelRefinery; import hf_labelsmooth.slr as s; "
            "assert StochasticLabelRefinery is s.StochasticLabelRefinery; "
            "assert 'transformers' not in sys.modules and 'timm' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "ok"
