"""Proxy teachers on real data: a student trained with `relation_prior` from (a) the matrix an LS++ teacher learned
(PT-LS++), (b) a matrix extracted from a cross-entropy teacher's predictions (`hf-labelsmooth extract`'s math,
`hf_labelsmooth.relations.extract.RelationExtractor`), against (c) uniform ls and plain ce students.

Run: ``python benchmarks/proxy_teacher.py`` (see ``results_proxy_teacher.md`` for the exact command and its run time).
Three datasets, each through the loop of its fidelity study (no new training loop here):
- ``digits``: scikit-learn digits, the MLP of ``fidelity.py`` (Adam, 60 epochs), clean and 20 % noisy labels;
- ``fsdd``: spoken digits, leave one speaker out, the MLP + timm optimizer of ``fidelity_audio.py``;
- ``trec``: TREC's 50 fine labels, the pretrained MiniLM fine-tuned with `LabelSmoothingTrainer` (``fidelity_text.py``;
  the students read the matrix through ``--relation_matrix``, a saved artifact folder, as a user would).
Per seed s, the students train with seed s; the LS++ teacher with seed 100 + s; the ce teacher of seed s is the ce
student of seed s + 1 (mod seeds): other init and data order. A teacher's matrix comes from its own training data;
its cost is its training time (+ the extraction pass).
Finished runs are cached in ``--cache`` (a rerun with the same settings skips them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import fidelity
import fidelity_audio
import fidelity_text
from _fidelity_common import RunCache, scores
from hf_labelsmooth import ClassRelationMatrix
from hf_labelsmooth.relations.extract import ExtractionOptions, RelationExtractor

STUDENTS = ("ce", "ls", "pt-lspp", "extracted")
TEACHER_SEED = 100


def extracted(logits: torch.Tensor, labels: torch.Tensor, options: ExtractionOptions, started: float) -> dict:
    """The matrix extracted from a teacher's training-set logits, and the seconds the pass took."""
    extractor = RelationExtractor(logits.shape[-1], options)
    for chunk in range(0, len(labels), 256):
        extractor.update(logits[chunk:chunk + 256], labels[chunk:chunk + 256])
    return {"extracted": extractor.compute().tolist(), "teacher_train_accuracy": extractor.accuracy,
            "extract_seconds": time.time() - started}


class Digits:
    """fidelity.py's MLP on scikit-learn digits; `noise` of the training labels."""

    def __init__(self, args: argparse.Namespace, noise: float) -> None:
        self.args, self.noise, self.name = args, noise, f"digits-noise{noise:g}"

    def __call__(self, method: str, seed: int, matrix: list | None = None, extract: bool = False) -> dict:
        xtr, ytr, xte, yte = fidelity.load_data(seed % TEACHER_SEED)  # teacher and student: the same split
        noisy = fidelity.add_symmetric_noise(ytr, self.noise, seed % TEACHER_SEED)
        kwargs = {"matrix": torch.tensor(matrix)} if matrix is not None else {}
        start = time.time()
        model, loss = fidelity.train(method, xtr, noisy, seed, self.args.digits_epochs, **kwargs)
        with torch.no_grad():
            result = {**scores(model(xte), yte), "seconds": time.time() - start}
            if loss.learns_relations:
                result["matrix"] = loss.relation_matrix().tolist()
            if extract:
                result.update(extracted(model(xtr), noisy, self.args.options, time.time()))
        return result


class Fsdd:
    """fidelity_audio.py's MLP, leave one speaker out; one result per seed = the mean over the held-out speakers."""

    name = "fsdd"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = fidelity_audio.parse_args(["--epochs", str(args.fsdd_epochs)])
        self.data, self.options = fidelity_audio.load_fsdd(self.args.data), args.options
        self.speakers = sorted(set(self.data[2]))[:args.fsdd_folds]

    def __call__(self, method: str, seed: int, matrix: dict | None = None, extract: bool = False) -> dict:
        folds = {}
        for held_out in self.speakers:
            def after(model, loss, x, y):
                out = {"matrix": loss.relation_matrix().tolist()} if getattr(loss, "learns_relations", False) else {}
                if extract:
                    with torch.no_grad():
                        out.update(extracted(model(x), y, self.options, time.time()))
                return out
            kwargs = {"matrix": torch.tensor(matrix[held_out])} if matrix is not None else None
            folds[held_out] = fidelity_audio.run(self.args, self.data, held_out, method,
                                                 seed, loss_kwargs=kwargs, after=after)
        return mean_over_folds(folds)


def mean_over_folds(folds: dict[str, dict]) -> dict:
    """Scores averaged over the folds, seconds summed; per-fold matrices kept by held-out speaker."""
    first = next(iter(folds.values()))
    result = {k: sum(f[k] for f in folds.values()) / len(folds) for k in ("accuracy", "nll", "ece")}
    result.update({k: sum(f[k] for f in folds.values()) for k in ("seconds", "extract_seconds") if k in first})
    result.update({k: {h: f[k] for h, f in folds.items()} for k in ("matrix", "extracted") if k in first})
    return result


class Trec:
    """fidelity_text.py's MiniLM fine-tune on the 50 fine TREC labels."""

    name = "trec-fine"

    def __init__(self, args: argparse.Namespace) -> None:
        from transformers import AutoTokenizer

        self.args = fidelity_text.parse_args(["--epochs", str(args.trec_epochs), "--max-length",
                                              str(args.trec_max_length), "--train-samples", str(args.trec_samples)])
        self.tokenizer = AutoTokenizer.from_pretrained(self.args.model)
        self.data, self.options = fidelity_text.load_data(self.args, self.tokenizer)["fine"], args.options

    def __call__(self, method: str, seed: int, matrix: list | None = None, extract: bool = False) -> dict:
        def after(trainer, data):
            if not extract:
                return {}
            start = time.time()
            pred = trainer.predict(data["train"])
            return extracted(torch.as_tensor(pred.predictions), torch.as_tensor(pred.label_ids), self.options, start)

        with tempfile.TemporaryDirectory() as folder:  # the student reads the matrix as --relation_matrix FOLDER
            if matrix is not None:
                ClassRelationMatrix(torch.tensor(matrix), self.data["names"]).save_pretrained(folder, card=False)
            result = fidelity_text.run(self.args, self.data, self.tokenizer, method, seed, after=after,
                                       relation_matrix=folder if matrix is not None else None)
        return {k: v for k, v in result.items() if k not in ("predictions", "max_dev", "uniform_rows")}


class Study:
    """Per seed: the ce student (its training-set predictions extracted), then the other students, the LS++ teacher
    trained when PT-LS++ needs it; the extracted prior of seed s comes from the ce run of seed s + 1 (another init and
    order: a ce teacher at no extra training cost). Every result cached by key."""

    def __init__(self, args: argparse.Namespace, task, cache: RunCache) -> None:
        self.args, self.task, self.cache, self.results = args, task, cache, {}

    def get(self, key: str, seed: int, make) -> dict | None:
        found = self.cache.get(f"{key}-s{seed}")
        if found is None and self.args.report_only:
            return None
        if found is None:
            found = make()
            self.cache.put(f"{key}-s{seed}", found)
        print(f"{self.task.name} {key} s{seed}: acc {found['accuracy']:.4f} nll {found['nll']:.4f} "
              f"ece {found['ece']:.4f} ({found['seconds']:.0f}s)", flush=True)
        return self.results.setdefault(key, {}).setdefault(seed, found)

    def prior(self, student: str, seed: int) -> list | dict | None:
        """The student's matrix, None where its teacher is not there."""
        if student == "pt-lspp":
            teacher = self.get("teacher-lspp", seed, lambda: self.task("lspp", TEACHER_SEED + seed))
            return teacher and teacher["matrix"]
        ce_teacher = self.results.get("ce", {}).get((seed + 1) % self.args.seeds)
        return ce_teacher and ce_teacher["extracted"]

    def run(self) -> dict:
        seeds = list(range(self.args.seeds))[::-1 if self.args.reverse_seeds else 1]
        for seed in seeds:
            self.get("ce", seed, lambda: self.task("ce", seed, extract=True))
        for seed in seeds:
            for student in self.args.students:
                matrix = self.prior(student, seed) if student not in ("ce", "ls") else None
                if student == "ls" or matrix is not None:
                    method = "ls" if student == "ls" else "relation_prior"
                    self.get(student, seed, lambda: self.task(method, seed, matrix=matrix))
        return self.results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "fsdd", "trec"], choices=["digits", "fsdd", "trec"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    p.add_argument("--digits-noise", type=float, nargs="+", default=[0.0, 0.2])
    p.add_argument("--digits-epochs", type=int, default=60)
    p.add_argument("--fsdd-epochs", type=int, default=20)
    p.add_argument("--fsdd-folds", type=int, default=3, help="held-out speakers (the first N, sorted)")
    p.add_argument("--trec-epochs", type=int, default=3)
    p.add_argument("--trec-max-length", type=int, default=16)
    p.add_argument("--trec-samples", type=int, default=500, help="training questions (0 = all 5,452)")
    p.add_argument("--temperature", type=float, default=1.0, help="extraction: softmax temperature")
    p.add_argument("--keep-self", action="store_true", help="extraction: keep the diagonal (default: excluded)")
    p.add_argument("--correct-only", action="store_true", help="extraction: correctly classified samples only")
    p.add_argument("--reverse-seeds", action="store_true",
                   help="run the seeds last to first (a second process on the same --cache meets the first halfway)")
    p.add_argument("--report-only", action="store_true", help="write the report from the cached runs, train nothing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=Path("outputs/proxy_teacher_cache"))
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results_proxy_teacher.md"))
    args = p.parse_args(argv)
    args.options = ExtractionOptions(correct_only=args.correct_only, temperature=args.temperature,
                                     exclude_self=not args.keep_self)
    return args


def settings_hash(args: argparse.Namespace, prefix: str) -> str:
    """A hash of the settings of one dataset's runs (its own flags and the extraction options)."""
    keys = [k for k in sorted(vars(args)) if k.startswith(prefix) or k in ("temperature", "keep_self", "correct_only")]
    return hashlib.sha1(json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True).encode()).hexdigest()[:10]


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    start, all_results = time.time(), {}
    tasks = {"digits": lambda: [Digits(args, n) for n in args.digits_noise], "fsdd": lambda: [Fsdd(args)],
             "trec": lambda: [Trec(args)]}
    for name in args.datasets:
        for task in tasks[name]():
            cache = RunCache(args.cache / f"{task.name}-{settings_hash(args, name)}")
            all_results[task.name] = Study(args, task, cache).run()
    from _proxy_teacher_report import write_report

    write_report(args, all_results, time.time() - start)


if __name__ == "__main__":
    main()
