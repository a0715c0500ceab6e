"""Fidelity through the timm launcher: ``hf-labelsmooth timm-train`` runs timm's own train.py from scratch on
scikit-learn's digits (the project's image folder: 1,200 training and 400 validation images) with train.py's
defaults (SGD, momentum 0.9, lr 0.1 × batch / 256, 5 warmup epochs, cosine), ls / lspp / lls, several seeds.

Run: ``python benchmarks/fidelity_timm.py --train-py path/to/timm/train.py`` (default: ``../shared/timm-train``).
Each run is one subprocess (the user's command, printed in the results file) whose output folder is the cache: a
rerun skips finished runs. The final weights are scored on the validation images here (accuracy, NLL, ECE);
learned matrices give their collapse statistics. Writes ``benchmarks/results_fidelity_timm.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from _fidelity_audio_w2v import matrix_stats
from _fidelity_common import command_line, mean_std, scores, table
from hf_labelsmooth._io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_LABELSMOOTH_SHARED", ROOT.parent / "shared"))


def train_command(args: argparse.Namespace, method: str, seed: int) -> list[str]:
    return [sys.executable, "-m", "hf_labelsmooth.cli", "timm-train", str(args.train_py), "--loss-type", method,
            "--data-dir", str(args.data), "--num-classes", "10", "--model", args.model, "--img-size", "32",
            "--crop-pct", "1.0", "--epochs", str(args.epochs), "--seed", str(seed), "--device", "cpu",
            "--workers", "0", "--no-aug", "--log-interval", "1000", "--checkpoint-hist", "1",
            "--output", str(args.out_dir), "--experiment", f"{method}-e{args.epochs}-s{seed}"]


def evaluate(args: argparse.Namespace, run_dir: Path) -> dict:
    """Accuracy / NLL / ECE of the final weights on the validation images, with timm's eval transform."""
    import timm
    from timm.data import create_dataset, create_transform, resolve_data_config

    model = timm.create_model(args.model, num_classes=10, checkpoint_path=str(run_dir / "last.pth.tar")).eval()
    config = resolve_data_config({"input_size": (3, 32, 32), "crop_pct": 1.0}, model=model)
    dataset = create_dataset("", root=str(args.data), split="validation", transform=create_transform(**config))
    loader = torch.utils.data.DataLoader(dataset, batch_size=200)
    with torch.no_grad():
        logits, labels = zip(*[(model(x), y) for x, y in loader])
    return scores(torch.cat(logits), torch.cat(labels))


def run(args: argparse.Namespace, method: str, seed: int) -> dict | None:
    """One run (cached in its output folder): validation scores and, for LS++/LLS, the matrix's collapse statistics;
    None for a run not finished yet with `--cached-only`."""
    run_dir = args.out_dir / f"{method}-e{args.epochs}-s{seed}"
    if not (run_dir / "last.pth.tar").exists() or not (run_dir / "seconds.txt").exists():
        if args.cached_only:
            return None
        start = time.time()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(args.out_dir / f"{method}-e{args.epochs}-s{seed}.log", "w") as log:
            subprocess.run(train_command(args, method, seed), check=True, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
        (run_dir / "seconds.txt").write_text(f"{time.time() - start:.0f}")
    result = {**evaluate(args, run_dir), "seconds": float((run_dir / "seconds.txt").read_text())}
    matrix_file = run_dir / "relation_matrix" / "relation_matrix.safetensors"
    if matrix_file.exists():
        from safetensors.torch import load_file

        result.update(matrix_stats(load_file(str(matrix_file))["relation_matrix"].float()))
    return result


def report(args: argparse.Namespace, results: dict) -> None:
    rows = []
    for method in args.methods:
        runs = [results[(method, s)] for s in range(args.seeds) if (method, s) in results]
        cells = [mean_std([r[k] for r in runs], 100 if k != "nll" else 1, 1 if k != "nll" else 3)
                 for k in ("accuracy", "nll", "ece")]
        matrix = ([mean_std([r[k] for r in runs], 1, 3) for k in ("max_offdiag", "diagonal")]
                  + [", ".join(str(r["collapsed_rows"]) for r in runs)]) if "max_offdiag" in runs[0] else ["–"] * 3
        rows.append([method, *cells, *matrix, str(len(runs))])
    minutes = sum(r["seconds"] for r in results.values()) / 60
    lines = ["# Fidelity through the timm launcher: timm's train.py from scratch on digits", "",
             f"`hf-labelsmooth timm-train train.py` with train.py's own defaults (SGD momentum 0.9, batch 128, lr "
             f"0.1 × 128 / 256 = 0.05, weight decay 2e-5, 5 warmup epochs from 1e-5, cosine; the library's default "
             f"matrix lr: 10 × lr), model `{args.model}` from scratch at 32 × 32, no augmentation, {args.epochs} "
             f"epochs (train.py's default is 300: cut to fit 2 shared CPU cores), on the project's digits image "
             f"folder (1,200 training, 400 validation images). Scores of the "
             f"final weights on the validation images; mean ± std over the seeds counted in the last column "
             f"(paired: seed s is the same init and data order for every method). Collapse statistics as in "
             f"results_fidelity_audio_w2v.md. This study: {minutes:.0f} min of training summed over {len(results)} "
             f"runs on {platform.machine()}, 2 shared cores, torch {torch.__version__}.", "",
             *table(["method", "accuracy (%)", "NLL", "ECE (%)", "largest off-diagonal", "diagonal",
                     "collapsed rows per seed", "seeds"], rows), "",
             "Command per run (seed 0): `" + " ".join(["hf-labelsmooth", *train_command(args, "METHOD", 0)[3:]])
             .replace(str(args.train_py), "path/to/timm/train.py") + "`", "",
             "Study: " + command_line("fidelity_timm.py", sys.argv[1:]), ""]
    atomic_write_bytes(args.report, "\n".join(lines).encode())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-py", type=Path, default=SHARED / "timm-train" / "train.py")
    p.add_argument("--data", type=Path, default=Path("outputs/data/digits"), help="written when missing")
    p.add_argument("--model", default="test_efficientnet_gn")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=["ls", "lspp", "lls"])
    p.add_argument("--cached-only", action="store_true", help="report the finished runs, run nothing")
    p.add_argument("--out-dir", type=Path, default=Path("outputs/fidelity_timm"))
    p.add_argument("--report", type=Path, default=Path(__file__).with_name("results_fidelity_timm.md"))
    args = p.parse_args(argv)
    if not args.data.exists():  # the project's data preparation (it also lays out TREC and FSDD)
        subprocess.run([sys.executable, str(ROOT / "train_scripts" / "prepare_demo_data.py"), str(args.data.parent)],
                       check=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for seed in range(args.seeds):
        for method in args.methods:
            r = run(args, method, seed)
            if r is None:
                continue
            results[(method, seed)] = r
            print(f"{method} s{seed}: acc {r['accuracy']:.4f} nll {r['nll']:.4f} ece {r['ece']:.4f} "
                  f"max_offdiag {r.get('max_offdiag', 0):.3f}", flush=True)
    report(args, results)


if __name__ == "__main__":
    main()
