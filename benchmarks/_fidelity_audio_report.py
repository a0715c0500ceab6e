"""The markdown report of fidelity_audio.py (results_fidelity_audio.md)."""
from __future__ import annotations

import argparse
import os
import platform
import statistics

import torch

from _fidelity_common import mean_std, table
from hf_labelsmooth.optim import default_relation_lr
from hf_labelsmooth._io import atomic_write_bytes


def _get(results: dict, held: str, method: str, seed: int, suffix: str = "") -> dict | None:
    return results.get(f"{held}-{method}{suffix}-s{seed}")


def _fold_means(results: dict, speakers: list[str], method: str, seeds: int, key: str) -> list[float]:
    """Per seed: the metric averaged over the held-out speakers."""
    out = []
    for s in range(seeds):
        runs = [_get(results, h, method, s) for h in speakers]
        if all(runs):
            out.append(statistics.mean(r[key] for r in runs))
    return out


def _per_speaker(results: dict, held: str, method: str, seeds: int) -> float:
    return statistics.mean(_get(results, held, method, s)["accuracy"] for s in range(seeds))


def _main_table(args: argparse.Namespace, speakers: list[str], results: dict) -> list[str]:
    rows = []
    for method in args.methods:
        accs = {h: _per_speaker(results, h, method, args.seeds) for h in speakers}
        ce = {h: _per_speaker(results, h, "ce", args.seeds) for h in speakers}
        wins = sum(accs[h] >= ce[h] for h in speakers)
        gaps = [a - c for a, c in zip(_fold_means(results, speakers, method, args.seeds, "accuracy"),
                                      _fold_means(results, speakers, "ce", args.seeds, "accuracy"))]
        rows.append([method, *(f"{100 * accs[h]:.1f}" for h in speakers),
                     mean_std(_fold_means(results, speakers, method, args.seeds, "accuracy"), 100, 1),
                     mean_std(gaps, 100, 1), f"{wins} / {len(speakers)}",
                     mean_std(_fold_means(results, speakers, method, args.seeds, "nll"), 1, 3),
                     mean_std(_fold_means(results, speakers, method, args.seeds, "ece"), 100, 1)])
    header = ["method", *speakers, "mean accuracy (%)", "vs ce (points)", "speakers ≥ ce", "NLL", "ECE (%)"]
    return ["## Accuracy on the unseen speaker (AdamW, library defaults)", "",
            "Columns per speaker: test accuracy (%) on that speaker when trained on the other four, mean over seeds. "
            "`mean accuracy`, `NLL`, `ECE`: over the five held-out speakers, then mean ± std over seeds; `vs ce`: "
            "the per-seed difference of the mean accuracy to ce's (same seed: same init and order).", "",
            *table(header, rows), ""]


def _matrix_rows(speakers: list[str], results: dict, suffix: str, methods: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for method in methods:
        runs = [r for h in speakers if (r := _get(results, h, method, 0, suffix))]
        if runs:
            rows.append([method, mean_std([r["max_dev"] for r in runs if "max_dev" in r], 1, 3),
                         f"{100 * statistics.mean(r['accuracy'] for r in runs):.1f}",
                         f"{statistics.mean(r['nll'] for r in runs):.3f}"])
    return rows


def _sweep(args: argparse.Namespace, speakers: list[str], results: dict) -> list[str]:
    from fidelity_audio import OPT

    rows = []
    for opt in ("adamw", "sgd"):
        lr = OPT[opt]["lr"]
        if opt == "sgd":
            rows += [[opt, "–", *r] for r in _matrix_rows(speakers, results, "-optsgd", ("ce",))]
        values = [None, *(v * lr for v in args.sgd_scales)] if opt == "sgd" else [None, *args.adamw_lrs]
        for value in values:
            suffix = ("" if opt == "adamw" else f"-opt{opt}") + ("" if value is None else f"-relation_lr{value}")
            steps = args.epochs * -(-2000 // args.batch_size)  # four speakers' 2,000 recordings per fold
            family = torch.optim.SGD if opt == "sgd" else torch.optim.AdamW
            label = f"default ({default_relation_lr(family, lr, steps):.2g})" if value is None else f"{value:g}"
            rows += [[opt, label, *r] for r in _matrix_rows(speakers, results, suffix, ("lspp", "lls"))]
    return ["## The matrix's learning rate, training from scratch (seed 0, the 5 folds)", "",
            f"AdamW lr {OPT['adamw']['lr']:g} (weight decay {OPT['adamw']['weight_decay']:g}); SGD lr "
            f"{OPT['sgd']['lr']:g}, momentum 0.9 (weight decay {OPT['sgd']['weight_decay']:g}); the network's lr "
            "as the matrix's lr is the papers' setting. max |R − R₀|: largest "
            "change of a matrix entry from the uniform start (mean ± std over folds); accuracy and NLL: mean over "
            "folds.", "",
            *table(["optimizer", "relation_lr", "method", "max \\|R − R₀\\|", "accuracy (%)", "NLL"], rows), ""]


def write_report(args: argparse.Namespace, speakers: list[str], results: dict, seconds: float) -> None:
    """Write the tables to `args.out` (atomically) and print them."""
    lines = ["# Fidelity on real audio: spoken digits, leave one speaker out", "",
             f"FSDD (5 speakers × 500 recordings; cite: Z. Jackson et al., Free Spoken Digit Dataset, CC BY-SA 4.0). "
             f"Features: 40-band log-mel spectrogram resampled to 32 frames, each band centred, standardised with the "
             f"training speakers' statistics. Model: MLP 1280-{args.hidden}-{args.hidden}-10 (dropout 0.3) from "
             f"scratch, {args.epochs} epochs, batch {args.batch_size}, timm's optimizer factory and cosine schedule. "
             f"Every method at its default α and, for lspp/lls, the library's default matrix lr. {args.seeds} seeds "
             f"(init and order). Sized for about 20 min on 2 busy shared CPU cores; this run: "
             f"{seconds / 60:.0f} min for {len(results)} runs on {platform.machine()}, {os.cpu_count()} cores, "
             f"torch {torch.__version__}.", ""]
    lines += _main_table(args, speakers, results)
    lines += ["## Learned matrices (AdamW, seed 0; max |R − R₀|: mean ± std over the 5 folds, scores: mean)", "",
              *table(["method", "max \\|R − R₀\\|", "accuracy (%)", "NLL"],
                     _matrix_rows(speakers, results, "", ("lspp", "lls"))), ""]
    lines += _sweep(args, speakers, results)
    text = "\n".join(lines)
    atomic_write_bytes(args.out, text.encode())
    print(text)
