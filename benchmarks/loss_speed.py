"""Forward+backward time of each loss vs F.cross_entropy(label_smoothing=0.1), as ratios, in one process.

Run: ``python benchmarks/loss_speed.py`` (several minutes on one CPU thread). Writes ``results_loss_speed.md``.
Timings are interleaved: in every round each loss is timed right after the reference, in a shuffled order, and a
ratio is the median over rounds of (loss time / reference time of the same round), so load from other processes
mostly cancels. A ``*`` marks ``check_inputs=False`` (no validation pass, no host sync).
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from _alloc import keep_freed_memory
from hf_labelsmooth import create_loss
from hf_labelsmooth.relations.io import atomic_write_bytes

LOSSES = ("ls", "ols", "lspp", "lls")
TARGETS = {"ls": 1.3, "ols": 1.3, "lspp": 2.0, "lls": 2.0}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
SPARSE = ["ols/64*", "lspp/64*", "lls/64*"]  # sparse top-N=64 variants, timed at large K only
FLOOR = "K²grad"


def make_steps(name: str, num_classes: int, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable]:
    """Closures doing one forward+backward: the reference, `name` with checks and `name*` without (one object)."""
    def ref_step() -> None:
        F.cross_entropy(logits, labels, label_smoothing=0.1).backward()
        logits.grad = None

    if name == FLOOR:  # the least a dense K×K parameter costs per step: its gradient, B rows added to zeros
        rows = torch.rand(len(labels), num_classes)
        return {"ref": ref_step, FLOOR: lambda: torch.zeros(num_classes, num_classes).index_add_(0, labels, rows)}
    base, _, top_n = name.partition("/")
    extra = {"top_n": int(top_n)} if top_n else {}
    loss = create_loss(base, num_classes, **extra).train()

    def step(check: bool) -> None:
        loss.check_inputs = check
        loss(logits, labels).backward()
        logits.grad = None
        for p in loss.parameters():
            p.grad = None
    steps = {"ref": ref_step, f"{name}*": lambda: step(False)}
    if not top_n:
        steps[name] = lambda: step(True)
    return steps


def time_once(fn: Callable[[], None], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def bench_config(num_classes: int, dtype: torch.dtype, batch: int, rounds: int,
                 losses: tuple[str, ...] = LOSSES) -> dict[str, float]:
    """Median per-round ratio of every loss (with and without checks) to the reference, plus the reference's ms.

    One loss at a time is built (a dense K×K matrix at K=21841 is 1.9 GB), timed against the reference in
    interleaved rounds, then freed.
    """
    torch.manual_seed(0)
    logits = torch.randn(batch, num_classes).mul(3).to(dtype).requires_grad_()
    labels = torch.randint(0, num_classes, (batch,))
    labels[::2] = logits.detach()[::2].argmax(dim=-1)  # half the batch correct: OLS's update has rows to add
    inner = max(1, int(1e6 // (batch * num_classes)))
    large = num_classes > 1000
    groups = list(losses) + ([s.rstrip("*") for s in SPARSE if s.split("/")[0] in losses] if large else []) + [FLOOR]
    out: dict[str, float] = {}
    refs: list[float] = []
    for group in groups:
        steps = make_steps(group, num_classes, logits, labels)
        names = [n for n in steps if n != "ref"]
        for fn in steps.values():
            time_once(fn, inner)
        ratios: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(rounds):
            random.shuffle(names)
            for n in names:
                ref = time_once(steps["ref"], inner)
                ratios[n].append(time_once(steps[n], inner) / ref)
                refs.append(ref)
        out.update({n: statistics.median(r) for n, r in ratios.items()})
        del steps
    out["ref_ms"] = statistics.median(refs) * 1e3
    return out


def to_markdown(results: dict[tuple[int, str], dict[str, float]], args: argparse.Namespace) -> str:
    cols = [f"{n}{s}" for n in LOSSES for s in ("", "*")] + SPARSE + [FLOOR]
    lines = [
        "# Loss speed: forward+backward time / F.cross_entropy(label_smoothing=0.1)",
        "",
        f"B={args.batch}, {args.rounds} interleaved rounds, median of per-round ratios; torch {torch.__version__}, "
        f"{args.threads} CPU thread(s), {platform.processor() or platform.machine()}, {args.allocator}; training "
        "mode, half the labels equal the arg-max (OLS accumulates those rows). `*` = `check_inputs=False`; `/64` = "
        f"sparse `top_n=64` (large K only); `{FLOOR}` = building the gradient of a dense K×K parameter alone "
        "(zeros + B rows), the floor of dense lspp/lls. Targets: ls/ols <= 1.3, lspp/lls <= 2.0; ✗ marks a miss.",
        "",
        "| K | dtype | CE+LS ms | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for (k, dt), r in results.items():
        cells = [f"{r[c]:.2f}{'' if r[c] <= TARGETS.get(c.rstrip('*').split('/')[0], 1e9) else ' ✗'}" if c in r
                 else "–" for c in cols]
        lines.append(f"| {k} | {dt} | {r['ref_ms']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000, 21841])
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_loss_speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.allocator = "glibc keeps freed memory" if keep_freed_memory() else "default allocator"
    results = {}
    for k in args.classes:
        for dt in args.dtypes:
            results[(k, dt)] = bench_config(k, DTYPES[dt], args.batch, args.rounds, tuple(args.losses))
            print(k, dt, {n: round(v, 2) for n, v in results[(k, dt)].items()}, flush=True)
    text = to_markdown(results, args)
    if args.out.name != "-":
        atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
