"""`RelationExtractor`: row c = mean predicted distribution over samples of class c, options, uniform rows, errors,
and the artifact it saves through `save_relations`."""
from __future__ import annotations

import logging

import pytest
import torch

from hf_labelsmooth import create_loss, load_relations, save_relations
from hf_labelsmooth.relations.extract import EXTRACTED_METHOD, ExtractionOptions, RelationExtractor

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [1.0, 1.5, 0.0], [0.2, 3.0, 0.1], [-0.5, 0.0, 2.5], [0.0, 2.0, 1.0]])
TARGETS = torch.tensor([0, 0, 1, 2, 2])  # sample 1 (class 0) and sample 4 (class 2) are misclassified


def hand_rows(logits: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    probs = (logits.double() / t).softmax(-1)
    return torch.stack([probs[(targets == c) & keep].mean(0) for c in range(3)])


def extract(options: ExtractionOptions | None = None, batch: int = 5, **kwargs) -> RelationExtractor:
    extractor = RelationExtractor(3, options, **kwargs)
    for i in range(0, len(TARGETS), batch):
        extractor.update(LOGITS[i:i + batch], TARGETS[i:i + batch])
    return extractor


def test_rows_are_mean_predicted_distributions_whatever_the_batching() -> None:
    expected = hand_rows(LOGITS, TARGETS, torch.ones(5, dtype=torch.bool))
    for batch in (1, 2, 5):
        matrix = extract(batch=batch).compute()
        assert matrix.dtype == torch.float32
        torch.testing.assert_close(matrix.double(), expected, atol=1e-7, rtol=0)
    extractor = extract()
    assert extractor.num_samples == 5 and extractor.accuracy == pytest.approx(3 / 5)


def test_temperature_softens_each_prediction() -> None:
    expected = hand_rows(LOGITS, TARGETS, torch.ones(5, dtype=torch.bool), t=2.0)
    matrix = extract(ExtractionOptions(temperature=2.0)).compute()
    torch.testing.assert_close(matrix.double(), expected, atol=1e-7, rtol=0)
    assert matrix.diagonal().sum() < extract().compute().diagonal().sum()


def test_correct_only_counts_as_ols_and_empty_classes_get_uniform_rows(caplog) -> None:
    keep = LOGITS.argmax(-1) == TARGETS
    extractor = extract(ExtractionOptions(correct_only=True), label_names=["cat", "dog", "car"])
    with caplog.at_level(logging.WARNING):
        matrix = extractor.compute()
    torch.testing.assert_close(matrix[:2].double(), hand_rows(LOGITS, TARGETS, keep)[:2], atol=1e-7, rtol=0)
    assert not caplog.records
    only_wrong = RelationExtractor(3, ExtractionOptions(correct_only=True), label_names=["cat", "dog", "car"])
    only_wrong.update(LOGITS[[1, 4]], TARGETS[[1, 4]])  # both misclassified: classes 0 and 2 count nothing
    with caplog.at_level(logging.WARNING):
        matrix = only_wrong.compute()
    torch.testing.assert_close(matrix, torch.full((3, 3), 1 / 3))
    assert only_wrong.empty_classes() == [0, 1, 2]
    assert "3 of 3 classes had no sample to count (cat, dog, car)" in caplog.text


def test_exclude_self_renormalises_off_diagonal_and_one_hot_rows_become_uniform() -> None:
    full = extract().compute().double()
    matrix = extract(ExtractionOptions(exclude_self=True)).compute().double()
    off = full * (1 - torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(matrix, off / off.sum(-1, keepdim=True), atol=1e-7, rtol=0)
    assert torch.all(matrix.diagonal() == 0)
    certain = RelationExtractor(3, ExtractionOptions(exclude_self=True))
    certain.update(torch.tensor([[1000.0, 0.0, 0.0], [0.0, 2.0, 1.0]]), torch.tensor([0, 1]))  # row 0: exactly 1, 0, 0
    matrix = certain.compute()
    torch.testing.assert_close(matrix[0], torch.tensor([0.0, 0.5, 0.5]))
    torch.testing.assert_close(matrix[2], torch.tensor([0.5, 0.5, 0.0]))  # no sample: uniform over the others


def test_bad_inputs_are_refused_with_the_fix() -> None:
    extractor = RelationExtractor(3)
    with pytest.raises(ValueError, match=r"Expected float logits of shape \[B, 3\]"):
        extractor.update(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="Expected integer class ids"):
        extractor.update(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Expected class ids in \[0, 3\) but got values from 0 to 3"):
        extractor.update(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="Expected finite logits"):
        extractor.update(torch.tensor([[0.0, float("nan"), 0.0]]), torch.tensor([0]))
    assert extractor.num_samples == 0  # nothing was counted by a refused batch
    with pytest.raises(ValueError, match="Expected `temperature` > 0"):
        ExtractionOptions(temperature=0.0)
    with pytest.raises(ValueError, match="Expected `num_classes` >= 2"):
        RelationExtractor(1)


def test_saved_like_a_loss_and_reused_as_relation_prior(tmp_path) -> None:
    extractor = extract(ExtractionOptions(exclude_self=True), label_names=["cat", "dog", "car"])
    folder = save_relations(extractor, ["cat", "dog", "car"], tmp_path / "m", source_model="me/teacher",
                            dataset="toy", extraction=extractor.summary())
    loaded = load_relations(folder)
    assert loaded.method == EXTRACTED_METHOD and loaded.alpha is None
    assert loaded.source_model == "me/teacher" and loaded.dataset == "toy"
    assert loaded.extra["extraction"] == {"correct_only": False, "temperature": 1.0, "exclude_self": True,
                                          "samples": 5, "model_accuracy": 0.6, "empty_classes": []}
    torch.testing.assert_close(loaded.matrix, extractor.compute())
    card = (folder / "README.md").read_text()
    assert "Extracted from **me/teacher** on **toy**" in card and "learned with" not in card
    loss = create_loss("relation_prior", num_classes=3, matrix=loaded, label_names=["cat", "dog", "car"], alpha=0.2)
    logits = torch.zeros(1, 3, requires_grad=True)
    loss(logits, torch.tensor([1])).backward()
    target = 0.8 * torch.tensor([0.0, 1.0, 0.0]) + 0.2 * loaded.matrix[1]
    torch.testing.assert_close(logits.grad[0], torch.full((3,), 1 / 3) - target)  # d CE / d z = p - t
