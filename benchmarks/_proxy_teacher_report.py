"""The report of proxy_teacher.py: ``results_proxy_teacher.md``."""
from __future__ import annotations

import argparse
import platform
import statistics
import sys

import torch

from _fidelity_common import mean_std, table
from hf_labelsmooth.metrics.functional import relation_stats
from hf_labelsmooth._io import atomic_write_bytes

NOTES = "## What it shows"
ROWS = (("ce", "ce", "–"), ("ls", "ls (uniform, α 0.1)", "–"),
        ("pt-lspp", "relation_prior ← LS++ teacher's matrix (PT-LS++)", "teacher-lspp"),
        ("extracted", "relation_prior ← matrix extracted from a ce teacher", "ce"))


def matrices(result: dict, key: str) -> list[torch.Tensor]:
    """The matrices stored under `key` of a result (one, or one per held-out speaker)."""
    value = result[key]
    return [torch.tensor(v) for v in (value.values() if isinstance(value, dict) else [value])]


def teacher_cost(results: dict, teacher: str) -> str:
    """Mean seconds of the teacher (training + test, + the extraction pass where there is one) over seeds."""
    if teacher == "–":
        return "–"
    runs = results[teacher].values()
    total = [r["seconds"] + r.get("extract_seconds", 0.0) for r in runs]
    extra = [r["extract_seconds"] for r in runs if "extract_seconds" in r]
    text = seconds(statistics.mean(total))
    return text + (f" (extraction {seconds(statistics.mean(extra))})" if extra else "")


def seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def score_rows(results: dict) -> list[list[str]]:
    rows = []
    for key, label, teacher in ROWS:
        if key not in results or (teacher != "–" and teacher not in results):
            continue
        runs = [results[key][s] for s in sorted(results[key])]
        ce = results.get("ce", {})
        delta = mean_std([results[key][s]["accuracy"] - ce[s]["accuracy"] for s in sorted(results[key]) if s in ce],
                         100)
        rows.append([label, str(len(runs)), mean_std([r["accuracy"] for r in runs], 100), delta,
                     mean_std([r["nll"] for r in runs], 1, 3), mean_std([r["ece"] for r in runs], 100),
                     teacher_cost(results, teacher), seconds(statistics.mean(r['seconds'] for r in runs))])
    for key, label in (("teacher-lspp", "(teacher) lspp, seed 100+s"),):
        runs = list(results.get(key, {}).values())
        if not runs:
            continue
        rows.append([label, str(len(runs)), mean_std([r["accuracy"] for r in runs], 100), "–",
                     mean_std([r["nll"] for r in runs], 1, 3), mean_std([r["ece"] for r in runs], 100), "–",
                     seconds(statistics.mean(r['seconds'] for r in runs))])
    return rows


def matrix_rows(results: dict) -> list[list[str]]:
    """Per teacher matrix: entropy of the off-diagonal rows, max entry, and top-1 agreement between the two."""
    rows, tops = [], {}
    for key, label in (("teacher-lspp", "LS++ teacher (learned)"), ("ce", "ce teacher (extracted)")):
        field = "matrix" if key == "teacher-lspp" else "extracted"
        mats = [m for r in results.get(key, {}).values() for m in matrices(r, field)]
        if not mats:
            return rows
        tops[key] = [m.clone().fill_diagonal_(-1).argmax(-1) for m in mats]
        k = mats[0].shape[0]
        stats = [relation_stats(m)["relation_entropy"] for m in mats]
        peak = [float(m.clone().fill_diagonal_(0).amax(-1).mean()) for m in mats]
        rows.append([label, mean_std(stats, 1, 3), f"{torch.log(torch.tensor(k - 1.0)):.3f}", mean_std(peak, 1, 3)])
    agree = [float((a == b).float().mean()) for a, b in zip(tops["teacher-lspp"], tops["ce"])]
    rows.append(["top-1 related class: same in both", mean_std(agree, 100, 1) + " %", "", ""])
    return rows


def write_report(args: argparse.Namespace, all_results: dict, wall: float) -> None:
    o = args.options
    shown = [a for a in sys.argv[1:] if a != "--report-only"]  # a report rebuilt from the cache names the full run
    command = "python benchmarks/proxy_teacher.py " + " ".join(shown)
    summed = sum(r["seconds"] + r.get("extract_seconds", 0.0) for results in all_results.values()
                 for runs in results.values() for r in runs.values())
    lines = ["# Proxy teachers: relation_prior from an LS++ teacher vs a matrix extracted from a ce teacher", "",
             f"Command (2 shared CPU cores, `nice -n 10`, `OMP_NUM_THREADS=1`): `{command.strip()}`. This run: "
             f"{summed / 60:.0f} min of training, testing and extraction summed over its runs (this invocation: "
             f"{wall / 60:.0f} min wall clock, cached runs count 0) on {platform.machine()}, "
             f"torch {torch.__version__}.",
             "",
             f"Per seed s (0–{args.seeds - 1}): the students train with seed s, the LS++ teacher with seed 100 + s, "
             "and the ce teacher of seed s is the ce student of seed s + 1 (mod the seeds): other init and data order, "
             "same data, same epochs. `relation_prior` uses α 0.1 "
             "(the papers' and the library's default); `ls` α 0.1. The extracted matrix is row c = the ce teacher's "
             "mean predicted distribution over its own training samples of class c (`RelationExtractor`, what "
             f"`hf-labelsmooth extract` runs), temperature {o.temperature:g}, correct only: {o.correct_only}, "
             f"diagonal {'excluded (rows renormalised, as LS++)' if o.exclude_self else 'kept'}; a class with no "
             "sample gets a uniform row. Teacher cost: its training + test seconds (+ the extraction pass) per "
             "seed, beside the student's own seconds; both measured on the shared machine (noisy, ±50 %). "
             "Mean ± std over seeds; Δ acc: per-seed difference to the ce student (same seed).", ""]
    setups = {"digits": f"MLP 64-256-256-10 of `fidelity.py`, Adam, {args.digits_epochs} epochs, 70/30 split per seed",
              "fsdd": f"MLP of `fidelity_audio.py` on log-mel features, {args.fsdd_epochs} epochs, mean over "
                      f"{args.fsdd_folds} held-out speakers (leave one speaker out; teacher and student see the "
                      "same 4 speakers)",
              "trec": f"pretrained MiniLM fine-tuned with `LabelSmoothingTrainer` (`fidelity_text.py`), "
                      f"{args.trec_samples or 5452} training questions, {args.trec_max_length} tokens, "
                      f"{args.trec_epochs} epochs, 50 fine labels; students read the matrix via `relation_matrix`"}
    header = ["student", "seeds", "accuracy (%)", "Δ acc vs ce (points)", "NLL", "ECE (%)", "teacher cost (s)",
              "student (s)"]
    for name, results in all_results.items():
        lines += [f"## {name}", "", setups[name.split("-")[0]] + ".", ""]
        lines += table(header, score_rows(results)) + [""]
        lines += table(["matrix", "row entropy (nats)", "uniform off-diagonal", "mean largest off-diagonal entry"],
                       matrix_rows(results)) + [""]
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    text = "\n".join(lines) + "\n" + (NOTES + notes if notes else "")  # hand-written findings survive a rerun
    atomic_write_bytes(args.out, text.encode())
    print("\n".join(lines))
