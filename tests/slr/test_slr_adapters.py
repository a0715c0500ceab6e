"""SLR adapters: the Hugging Face Trainer pair (loss scaling, a tiny BERT refinery) and the timm loop (TTA flip)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, List, Value

from hf_labelsmooth.slr import HFTrainerSLRAdapter, StochasticLabelRefinery, TimmSLRAdapter, soft_loss_func
from hf_labelsmooth.slr.checkpoint import column_array

K = 3


def test_soft_loss_func_scales_by_samples_not_label_entries() -> None:
    torch.manual_seed(0)
    logits, soft = torch.randn(6, K), torch.rand(6, K).softmax(-1)
    outputs = {"logits": logits}
    mean = soft_loss_func(K)(outputs, soft)
    # The Trainer counts labels != -100: B·K entries for soft labels (here 2 accumulated batches of 6).
    torch.testing.assert_close(soft_loss_func(K)(outputs, soft, num_items_in_batch=torch.tensor(12 * K)), mean / 2)
    torch.testing.assert_close(soft_loss_func(K)(outputs, soft, num_items_in_batch=6 * K), mean)
    values = torch.arange(6.0)
    reg = soft_loss_func(1, task="regression")({"logits": values[:, None] + 1}, values, num_items_in_batch=6)
    assert reg.item() == pytest.approx(1.0)


def test_hf_trainer_refinery_tiny_bert(tmp_path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 24)
    ids = rng.integers(5, 40, (24, 8))
    ids[:, 1] = labels + 1  # a learnable token
    features = Features({"input_ids": List(Value("int64")), "label": ClassLabel(num_classes=K)})
    ds = Dataset.from_dict({"input_ids": ids.tolist(), "label": labels.tolist()}, features=features)
    config = BertConfig(vocab_size=48, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=K)
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), per_device_train_batch_size=8, num_train_epochs=2,
                             learning_rate=1e-3, report_to="none", save_strategy="no", use_cpu=True,
                             disable_tqdm=True, gradient_accumulation_steps=2)
    adapter = HFTrainerSLRAdapter(model_init=lambda: BertForSequenceClassification(config), args=args, num_classes=K)
    refinery = StochasticLabelRefinery(adapter.train, adapter.predict, k=2, rounds=1, seed=0,
                                       output_dir=tmp_path / "slr")
    refined, model = refinery.fit(ds)
    soft = column_array(refined, "soft_label")
    assert soft.shape == (24, K)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    assert (soft[np.arange(24), labels] >= 0.75).all() and (soft[np.arange(24), labels] < 1.0).all()
    probs = adapter.predict(model, ds)
    assert probs.shape == (24, K) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_timm_adapter_flip_tta_and_refinery() -> None:
    pytest.importorskip("timm")
    rng = np.random.default_rng(0)
    images = rng.random((12, 3, 16, 16), dtype=np.float32)
    ds = Dataset.from_dict({"pixel_values": images.tolist(), "label": rng.integers(0, K, 12).tolist()})
    adapter = TimmSLRAdapter(num_classes=K, model_name="test_resnet", epochs=1, batch_size=4, tta_flip=True)
    refined = StochasticLabelRefinery(adapter.train, adapter.predict, k=2, rounds=1, num_classes=K).run(ds)
    assert column_array(refined, "soft_label").shape == (12, K)
    model = adapter.train(refined, seed=0)
    plain = TimmSLRAdapter(num_classes=K, model_name="test_resnet")
    flipped = Dataset.from_dict({"pixel_values": images[..., ::-1].tolist()})
    expected = (plain.predict(model, ds) + plain.predict(model, flipped)) / 2
    np.testing.assert_allclose(adapter.predict(model, ds), expected, rtol=1e-4, atol=1e-6)


def test_timm_adapter_regression_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    grade = (2 * x[:, 0] + 1).astype(np.float32)
    ds = Dataset.from_dict({"pixel_values": x.tolist(), "grade": grade.tolist()})
    adapter = TimmSLRAdapter(num_classes=1, model_fn=lambda: torch.nn.Linear(2, 1), task="regression", epochs=30,
                             batch_size=8, lr=0.05, weight_decay=0.0)
    refined = StochasticLabelRefinery(adapter.train, adapter.predict, k=4, rounds=1, task="regression",
                                      label_column="grade").run(ds)
    values = column_array(refined, "soft_label")
    assert values.shape == (40,)
    # |L1 - L0| = |P - L0| / 4: small when the fold models learnt y = 2x + 1 (a constant model gives about 0.4).
    change = np.abs(values - grade)
    assert 0 < change.mean() < 0.1
