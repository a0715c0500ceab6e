"""Fidelity on real audio: spoken digits (FSDD, 5 speakers), leave one speaker out: does each method generalise to
an unseen speaker at least as well as cross-entropy?

Run: ``python benchmarks/fidelity_audio.py`` (about 20 min on 2 busy shared CPU cores; the results file says how
long its run took). Each recording becomes a 40-band log-mel spectrogram (25 ms window at 8 kHz, 10 ms hop),
resampled to 32 frames and centred per band; an MLP (1280-256-256-10, dropout 0.3) is trained from scratch the timm way
(`timm.optim.create_optimizer_v2`, `hf_labelsmooth.integrations.timm.create_classification_loss` and
`add_relation_param_group` with the library's default matrix lr, timm's cosine schedule per epoch) on 4 speakers
and tested on the 5th, for each speaker, method and seed. A second table sweeps the matrix's learning rate with
AdamW and with SGD (the from-scratch evidence for `hf_labelsmooth.optim.default_relation_lr`).
Writes ``benchmarks/results_fidelity_audio.md``. Scale up with ``--epochs``, ``--hidden``, ``--seeds``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn

from _fidelity_audio_w2v import add_w2v_args, main_w2v
from _fidelity_common import matrix_facts, scores

METHODS = ("ce", "ls", "ols", "lspp", "lls")
SHARED = Path(os.environ.get("HF_LABELSMOOTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
OPT = {"adamw": {"lr": 1e-3, "weight_decay": 0.05}, "sgd": {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9}}


def log_mel(path: Path, filters: torch.Tensor, frames: int) -> torch.Tensor:
    """40 × `frames` log-mel spectrogram of a wav (8 kHz), each band centred."""
    audio, _ = sf.read(path, dtype="float32")
    window = torch.hann_window(200)
    power = torch.stft(torch.from_numpy(audio), 256, 80, 200, window=window, return_complex=True).abs().pow(2)
    mel = (filters.T @ power).clamp_min(1e-10).log()
    mel = F.interpolate(mel[None], size=frames, mode="linear", align_corners=False)[0]
    return mel - mel.mean(dim=1, keepdim=True)


def load_fsdd(folder: Path, frames: int = 32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(features [N, 40, frames], digits [N], speaker of each recording) for every wav in `folder`."""
    from transformers.audio_utils import mel_filter_bank

    filters = torch.tensor(mel_filter_bank(num_frequency_bins=129, num_mel_filters=40, min_frequency=20,
                                           max_frequency=4000, sampling_rate=8000, norm="slaney", mel_scale="slaney"),
                           dtype=torch.float32)
    paths = sorted(folder.glob("*.wav"))
    feats = torch.stack([log_mel(p, filters, frames) for p in paths])
    digits = torch.tensor([int(p.stem.split("_")[0]) for p in paths])
    return feats, digits, [p.stem.split("_")[1] for p in paths]


def mlp(in_features: int, hidden: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 10))


def build(args: argparse.Namespace, method: str, opt: str, seed: int, relation_lr: float | None, in_features: int,
          total_steps: int, **loss_kwargs):
    """Model, loss, optimizer (with the matrix's group; its default lr knows the run's `total_steps`) and
    scheduler, as a timm training script builds them (`loss_kwargs`: method options, e.g. ``matrix`` for
    relation_prior)."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    from hf_labelsmooth.integrations.timm import add_relation_param_group, create_classification_loss

    model = mlp(in_features, args.hidden, seed)
    loss = create_classification_loss(method, num_classes=10, **loss_kwargs)
    optimizer = create_optimizer_v2(model, opt=opt, **OPT[opt])
    add_relation_param_group(optimizer, loss, lr=relation_lr, weight_decay=None,
                             network_weight_decay=OPT[opt]["weight_decay"], total_steps=total_steps)
    return model, loss, optimizer, CosineLRScheduler(optimizer, t_initial=args.epochs)


def run(args: argparse.Namespace, data: tuple, held_out: str, method: str, seed: int, opt: str = "adamw",
        relation_lr: float | None = None, loss_kwargs: dict | None = None, after=None) -> dict:
    """Train on every speaker but `held_out`, test on `held_out`; scores and, for learned matrices, their facts.

    `loss_kwargs` go to the loss (e.g. ``matrix`` for relation_prior); `after(model, loss, x, y)`, given the trained
    model, its loss and the standardised training data, returns more result fields (e.g. a matrix extracted from
    the model)."""
    feats, digits, speakers = data
    test = torch.tensor([s == held_out for s in speakers])
    x, y, xt, yt = feats[~test], digits[~test], feats[test], digits[test]
    mean, std = x.mean(0), x.std(0)
    x, xt = (x - mean) / std, (xt - mean) / std
    model, loss, optimizer, scheduler = build(args, method, opt, seed, relation_lr, x[0].numel(),
                                              total_steps(args, len(y)), **(loss_kwargs or {}))
    g, start = torch.Generator().manual_seed(seed), time.time()
    for epoch in range(args.epochs):
        model.train(), loss.train()
        for idx in torch.randperm(len(y), generator=g).split(args.batch_size):
            value = loss(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        if hasattr(loss, "end_epoch"):
            loss.end_epoch()
        scheduler.step(epoch + 1)
    model.eval()
    with torch.no_grad():
        result = {**scores(model(xt), yt), "seconds": time.time() - start}
    if getattr(getattr(loss, "spec", None), "learns_relations", False):
        result.update({k: v for k, v in matrix_facts(loss).items() if k != "matrix"})
    if after is not None:
        result.update(after(model, loss, x, y))
    return result


def total_steps(args: argparse.Namespace, n_train: int) -> int:
    return args.epochs * -(-n_train // args.batch_size)


def plan(args: argparse.Namespace, speakers: list[str]) -> list[dict]:
    """Leave-one-speaker-out runs (AdamW, default matrix lr), then the matrix-lr sweep (seed 0, every fold)."""
    jobs = [dict(held_out=h, method=m, seed=s) for s in range(args.seeds) for h in speakers for m in args.methods]
    for opt, values in (("adamw", args.adamw_lrs), ("sgd", args.sgd_scales)):
        if opt == "sgd":
            jobs += [dict(held_out=h, method="ce", seed=0, opt="sgd") for h in speakers]
        for value in values:
            lr = value * OPT["sgd"]["lr"] if opt == "sgd" else value
            jobs += [dict(held_out=h, method=m, seed=0, opt=opt, relation_lr=lr) for h in speakers
                     for m in ("lspp", "lls")]
        if opt == "sgd":  # AdamW's default-lr runs of seed 0 are the main runs
            jobs += [dict(held_out=h, method=m, seed=0, opt=opt) for h in speakers for m in ("lspp", "lls")]
    return jobs


def job_key(job: dict) -> str:
    extra = "".join(f"-{k}{job[k]}" for k in ("opt", "relation_lr") if job.get(k) not in (None, "adamw"))
    return f"{job['held_out']}-{job['method']}{extra}-s{job['seed']}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "wav2vec2":
        return main_w2v(args)
    start = time.time()
    data = load_fsdd(args.data)
    speakers = sorted(set(data[2]))
    results = {}
    for job in plan(args, speakers):
        key = job_key(job)
        if key not in results:
            results[key] = run(args, data, **job)
            r = results[key]
            print(f"{key}: acc {r['accuracy']:.4f} nll {r['nll']:.4f} max_dev {r.get('max_dev', 0):.3f} "
                  f"({r['seconds']:.0f}s, total {time.time() - start:.0f}s)", flush=True)
    from _fidelity_audio_report import write_report

    write_report(args, speakers, results, time.time() - start)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data" / "fsdd" / "recordings")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--adamw-lrs", type=float, nargs="*", default=[1e-3, 3e-1],
                   help="matrix lrs tried with AdamW (lr 1e-3) besides the default")
    p.add_argument("--sgd-scales", type=float, nargs="*", default=[1.0],
                   help="matrix lr = network lr (0.05) × these, tried with SGD besides the default")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: no oversubscription on shared cores)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results_fidelity_audio.md"))
    add_w2v_args(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
