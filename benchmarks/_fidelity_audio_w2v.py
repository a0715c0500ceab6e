"""The wav2vec2 part of fidelity_audio.py (``--model wav2vec2``): the project's small Wav2Vec2 config trained from
scratch by ``train_scripts/run_audio_classification.py`` exactly as a user runs it, on four FSDD speakers, tested on
the fifth (all 500 recordings of each speaker). Each run is one subprocess whose output folder is kept as the cache
(``--w2v-out``): a rerun skips finished runs. Writes ``benchmarks/results_fidelity_audio_w2v.md``."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from _fidelity_common import command_line, mean_std, table
from hf_labelsmooth.optim import COLLAPSE_THRESHOLD, default_relation_lr
from hf_labelsmooth._io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_scripts" / "run_audio_classification.py"
CONFIG = ROOT / "train_scripts" / "configs" / "wav2vec2-digits"


def make_fold(recordings: Path, held_out: str, folder: Path) -> Path:
    """folder/{train,test}/<digit>/*.wav symlinks: every recording of the other speakers, and of `held_out`."""
    for path in sorted(recordings.glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        target = folder / ("test" if speaker == held_out else "train") / digit / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(path.resolve())
    return folder


def command(args: argparse.Namespace, fold: Path, out: Path, method: str, seed: int, relation_lr: float | None
            ) -> list[str]:
    """The user's command line (``--use_cpu``, no checkpoints) for one run."""
    cmd = [sys.executable, str(SCRIPT), "--config_name", str(CONFIG), "--train_dir", str(fold / "train"),
           "--validation_dir", str(fold / "test"), "--max_length_seconds", "1", "--label_smoothing_method", method,
           "--output_dir", str(out), "--do_train", "--do_eval", "--num_train_epochs", str(args.w2v_epochs),
           "--learning_rate", str(args.w2v_lr), "--per_device_train_batch_size", "32", "--seed", str(seed),
           "--use_cpu", "--save_strategy", "no", "--report_to", "none", "--dataloader_num_workers", "0"]
    return cmd + (["--relation_lr", f"{relation_lr:g}"] if relation_lr is not None else [])


def matrix_stats(matrix: torch.Tensor) -> dict[str, float]:
    """Collapse statistics of a learned matrix: largest off-diagonal entry, rows whose largest off-diagonal entry
    exceeds `COLLAPSE_THRESHOLD`, mean diagonal and mean row entropy."""
    k = matrix.shape[0]
    off = matrix.masked_fill(torch.eye(k, dtype=torch.bool), 0.0).amax(-1)
    return {"max_offdiag": float(off.max()), "collapsed_rows": int((off > COLLAPSE_THRESHOLD).sum()),
            "diagonal": float(matrix.diagonal().mean()),
            "entropy": float(-(matrix * matrix.clamp_min(1e-12).log()).sum(-1).mean())}


def run(args: argparse.Namespace, fold: Path, method: str, seed: int, relation_lr: float | None) -> dict | None:
    """One run (cached in its output folder): test scores on the held-out speaker and, for LS++/LLS, the matrix;
    None for a run not cached yet with `--cached-only`."""
    tag = "default" if relation_lr is None else f"{relation_lr:g}"
    out = args.w2v_out / f"{args.held_out}-e{args.w2v_epochs}-{method}-{tag}-s{seed}"
    if not (out / "eval_results.json").exists():
        if args.cached_only:
            return None
        start = time.time()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(out.with_suffix(".log"), "w") as log:
            subprocess.run(command(args, fold, out, method, seed, relation_lr), check=True, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
        (out / "seconds.txt").write_text(f"{time.time() - start:.0f}")
    scores = json.loads((out / "eval_results.json").read_text())
    steps = json.loads((out / "trainer_state.json").read_text())["max_steps"]
    result = {"accuracy": scores["eval_accuracy"], "nll": scores["eval_nll"], "ece": scores["eval_ece"],
              "steps": steps, "seconds": float((out / "seconds.txt").read_text()) if (out / "seconds.txt").exists()
              else float("nan")}
    matrix_file = out / "relation_matrix" / "relation_matrix.safetensors"
    if method in ("lspp", "lls") and matrix_file.exists():
        result.update(matrix_stats(load_file(str(matrix_file))["relation_matrix"].float()))
        result["relation_lr"] = relation_lr if relation_lr is not None else default_relation_lr(
            torch.optim.AdamW, args.w2v_lr, total_steps=steps)
    return result


def main_w2v(args: argparse.Namespace) -> None:
    """Every (method, matrix lr, seed) run on the held-out speaker, then the report."""
    fold = make_fold(args.data, args.held_out, args.w2v_out / f"fold-{args.held_out}")
    lrs: list[float | None] = [None, *args.w2v_relation_lrs]
    results, start = {}, time.time()
    for seed in range(args.seeds):
        for method in args.methods:
            for lr in lrs if method in ("lspp", "lls") else [None]:
                r = run(args, fold, method, seed, lr)
                if r is None:
                    continue
                results[(method, lr, seed)] = r
                print(f"{method} lr={lr} s{seed}: acc {r['accuracy']:.4f} nll {r['nll']:.4f} ece {r['ece']:.4f} "
                      f"max_offdiag {r.get('max_offdiag', 0):.3f} (total {time.time() - start:.0f}s)", flush=True)
    write_w2v_report(args, results, lrs)


def _row(args: argparse.Namespace, results: dict, method: str, lr: float | None) -> list[str] | None:
    runs = [results[(method, lr, s)] for s in range(args.seeds) if (method, lr, s) in results]  # finished seeds
    if not runs:
        return None
    label = "–" if method not in ("lspp", "lls") else ("default " if lr is None else "") + \
        f"{runs[0]['relation_lr']:.2g}"
    cells = [mean_std([r[k] for r in runs], 100 if k != "nll" else 1, 1 if k != "nll" else 3)
             for k in ("accuracy", "nll", "ece")]
    matrix = [mean_std([r[k] for r in runs], 1, 3) for k in ("max_offdiag", "diagonal")] + \
        [", ".join(str(r["collapsed_rows"]) for r in runs)] if "max_offdiag" in runs[0] else ["–"] * 3
    return [method, label, *cells, *matrix, str(len(runs))]


def write_w2v_report(args: argparse.Namespace, results: dict, lrs: list[float | None]) -> None:
    rows = [r for m in args.methods for lr in (lrs if m in ("lspp", "lls") else [None])
            if (r := _row(args, results, m, lr)) is not None]
    seconds = sum(r["seconds"] for r in results.values() if r["seconds"] == r["seconds"])
    steps = next(iter(results.values()))["steps"]
    lines = [
        "# Fidelity on real audio from scratch: the project's Wav2Vec2 config, one unseen speaker", "",
        f"`train_scripts/run_audio_classification.py --config_name train_scripts/configs/wav2vec2-digits` as a user "
        f"runs it (AdamW lr {args.w2v_lr:g}, linear decay, batch 32, 1-second crops, {args.w2v_epochs} epochs = "
        f"{steps} optimizer steps, `--use_cpu`), trained on all 2,000 FSDD recordings of four speakers and tested on "
        f"all 500 of the fifth ({args.held_out}; cite: Z. Jackson et al., Free Spoken Digit Dataset, CC BY-SA 4.0). "
        f"Every method at its default α; `relation_lr` the library's default unless given. Mean ± std over "
        f"the seeds counted in the last column (init, crops and order; paired: seed s is the same network init for "
        f"every method). This study: {seconds / 60:.0f} min of training summed over "
        f"{len(results)} runs on {platform.machine()}, 2 shared cores, torch {torch.__version__}.", "",
        f"Collapse statistics of the learned matrix R (10 × 10, rows sum to 1): largest off-diagonal entry, mean "
        f"diagonal, and per seed the rows whose largest off-diagonal entry exceeds {COLLAPSE_THRESHOLD:g} (the "
        f"library's collapse guard). `relation_lr` 0.05 is the library's former default for AdamW.", "",
        *([args.w2v_note, ""] if args.w2v_note else []),
        *table(["method", "relation_lr", "accuracy (%)", "NLL", "ECE (%)", "largest off-diagonal", "diagonal",
                "collapsed rows per seed", "seeds"], rows), "",
        "Command: " + command_line("fidelity_audio.py", sys.argv[1:]), ""]
    atomic_write_bytes(args.w2v_report, "\n".join(lines).encode())
    print(f"wrote {args.w2v_report}")


def add_w2v_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["mlp", "wav2vec2"], default="mlp",
                   help="mlp: log-mel MLP, leave each speaker out; wav2vec2: the project's config, one speaker out")
    p.add_argument("--held-out", default="yweweler", help="wav2vec2: the speaker tested on")
    p.add_argument("--w2v-epochs", type=int, default=12)
    p.add_argument("--w2v-lr", type=float, default=3e-3)
    p.add_argument("--w2v-relation-lrs", type=float, nargs="*", default=[],
                   help="wav2vec2: matrix lrs tried besides the default (lspp/lls)")
    p.add_argument("--w2v-out", type=Path, default=Path("outputs/fidelity_audio_w2v"))
    p.add_argument("--w2v-note", default="", help="wav2vec2: a paragraph for the results file (how it was scaled)")
    p.add_argument("--cached-only", action="store_true", help="wav2vec2: report the finished runs, run nothing")
    p.add_argument("--w2v-report", type=Path, default=Path(__file__).with_name("results_fidelity_audio_w2v.md"))
