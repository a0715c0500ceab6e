"""Peak extra memory and step time of the sparse top-N losses (``top_n=64``) at K = 21841 and 100000.

Run: ``python benchmarks/sparse_memory.py`` (a few minutes). Writes ``results_sparse_memory.md``. Each (loss, K)
runs in a fresh subprocess: after two F.cross_entropy(label_smoothing=0.1) forward+backward steps (the baseline
peak RSS), the sparse loss does three training steps (forward, backward, Adam step on its parameters, OLS/refresh
bookkeeping, an `end_epoch()` swap/refresh); "peak extra" is the rise of the process's peak RSS over the baseline.
Half of each batch is labelled with the arg-max class, so OLS accumulates and the refresh sees candidates.
The dense K×K figures are computed, not run (100000² float32 = 40 GB per matrix).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hf_labelsmooth._io import atomic_write_bytes

LOSSES = ("ols", "lspp", "lls")
# dense persistent float32 K×K tensors: ols matrix + accumulator; lspp/lls parameter + grad + 2 Adam moments
DENSE_COPIES = {"ols": 2, "lspp": 4, "lls": 4}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def ce_step(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds of one reference step: F.cross_entropy(label_smoothing=0.1) forward + backward."""
    start = time.perf_counter()
    F.cross_entropy(logits, labels, label_smoothing=0.1).backward()
    logits.grad = None
    return time.perf_counter() - start


def child(name: str, num_classes: int, top_n: int, batch: int, steps: int) -> dict[str, float]:
    """Measure one (loss, K) in this process; returns MB and ms figures."""
    from hf_labelsmooth import create_loss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    logits = torch.randn(batch, num_classes).mul(3).requires_grad_()
    labels = torch.randint(0, num_classes, (batch,))
    labels[: batch // 2] = logits[: batch // 2].argmax(-1)
    ce_times = [ce_step(logits, labels) for _ in range(2)]
    base = peak_mb()
    loss = create_loss(name, num_classes, top_n=top_n, check_inputs=False).train()
    params = list(loss.parameters())
    opt = torch.optim.Adam(params, lr=0.01) if params else None
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss(logits, labels).backward()
        if opt:
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        logits.grad = None
        ce_times.append(ce_step(logits, labels))
    start = time.perf_counter()
    loss.end_epoch()
    swap_ms = (time.perf_counter() - start) * 1e3
    state = sum(t.numel() * t.element_size() for t in loss.state_dict().values())
    adam = 2 * sum(p.numel() * p.element_size() for p in params)
    return {"extra_mb": peak_mb() - base, "state_mb": (state + adam) / 2**20, "step_ms": statistics.median(times) * 1e3,
            "ce_ms": statistics.median(ce_times) * 1e3, "swap_ms": swap_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[21841, 100000])
    parser.add_argument("--top-n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("LOSS", "K"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_sparse_memory.md"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.top_n, args.batch, args.steps)))
        return
    rows = []
    for k in args.classes:
        for name in LOSSES:
            cmd = [sys.executable, __file__, "--child", name, str(k), "--top-n", str(args.top_n),
                   "--batch", str(args.batch), "--steps", str(args.steps)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            dense_gb = DENSE_COPIES[name] * k * k * 4 / 2**30
            rows.append(f"| {name} | {k} | {r['extra_mb']:.0f} | {r['state_mb']:.1f} | {dense_gb:.1f} | "
                        f"{r['step_ms']:.0f} | {r['ce_ms']:.0f} | {r['step_ms'] / r['ce_ms']:.2f} | "
                        f"{r['swap_ms']:.0f} |")
            print(rows[-1], flush=True)
    lines = [
        f"# Sparse top-N (N={args.top_n}) at large K: peak extra memory and time",
        "",
        f"B={args.batch}, float32, CPU (1 thread), torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}; each row in a fresh process. Peak extra = rise of peak RSS "
        "over two F.cross_entropy(label_smoothing=0.1) steps on the same logits (so it counts the loss's state, "
        "its Adam moments and its per-batch [B, K] temporaries beyond cross-entropy's). State = persistent "
        "buffers + parameters + Adam moments. Dense = the K×K tensors a dense loss would hold (computed). "
        "Step = forward + backward + Adam step of the loss's parameters (ratio vs cross-entropy forward + backward, "
        "timed alternately in the same process). Swap = `end_epoch()` (OLS swap / slot refresh). "
        "Target: < 2 GB extra at K=100000.",
        "",
        "| loss | K | peak extra MB | state MB | dense state GB | step ms | CE ms | ratio | swap ms |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
