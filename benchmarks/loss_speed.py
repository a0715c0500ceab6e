"""Forward+backward time of each loss vs F.cross_entropy(label_smoothing=0.1) and vs the peer code users copy.

Run: ``python benchmarks/loss_speed.py [--device cuda]`` (~15 minutes on one CPU thread). Writes
``results_loss_speed.md`` (``results_gpu_speed.md`` on CUDA). Timings are interleaved: in every round each variant is
timed right after the reference, in a shuffled order, and a ratio is the median over rounds of (variant time /
reference time of the same round), so load from other processes mostly cancels; ours/peer is the median of the two
times of the same round. ``*`` marks ``check_inputs=False``; ``c`` compiled (``torch.compile(fullgraph=True)``,
inductor; timed after its compilation); peers (`_peers.py`) are eager, as users run them.
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
from _peers import PEERS
from _soft_speed import run_soft
from hf_labelsmooth import create_loss
from hf_labelsmooth._io import atomic_write_bytes

LOSSES = ("ls", "ols", "lspp", "lls")
TARGETS = {"ls": 1.3, "ols": 1.3, "lspp": 2.0, "lls": 2.0}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
SPARSE = ("ols/64", "lspp/64", "lls/64")  # sparse top-N=64 variants, timed at large K only
FLOOR = "K²grad"


def make_steps(name: str, num_classes: int, logits: torch.Tensor, labels: torch.Tensor,
               compiled: bool) -> dict[str, Callable[[], None]]:
    """One forward+backward each: the reference, `name` with checks (dense), `name*` without, `name*c` compiled
    (when `compiled`), `peer` (when one exists; dense only)."""
    def ref_step() -> None:
        F.cross_entropy(logits, labels, label_smoothing=0.1).backward()
        logits.grad = None

    if name == FLOOR:  # the least a dense K×K parameter costs per step: its gradient, B rows added to zeros
        rows = torch.rand(len(labels), num_classes, device=logits.device)
        return {"ref": ref_step, FLOOR: lambda: torch.zeros(num_classes, num_classes, device=logits.device)
                .index_add_(0, labels, rows)}
    base, _, top_n = name.partition("/")
    extra = {"top_n": int(top_n)} if top_n else {}
    loss = create_loss(base, num_classes, **extra).to(logits.device).train()
    steps = {"ref": ref_step, f"{name}*": _loss_step(loss, logits, labels, check=False)}
    if not top_n:
        steps[name] = _loss_step(loss, logits, labels, check=True)
    if compiled:
        torch._dynamo.reset()  # one compilation per variant (all losses share RelationLoss.forward's cache)
        twin = create_loss(base, num_classes, check_inputs=False, **extra).to(logits.device).train()
        steps[f"{name}*c"] = _loss_step(twin, logits, labels, fn=torch.compile(twin, fullgraph=True))
    if not top_n and base in PEERS:
        steps["peer"] = _loss_step(PEERS[base](num_classes).to(logits.device).train(), logits, labels)
    return steps


def _loss_step(loss: torch.nn.Module, logits: torch.Tensor, labels: torch.Tensor, check: bool | None = None,
               fn: Callable | None = None) -> Callable[[], None]:
    def step() -> None:
        if check is not None:
            loss.check_inputs = check
        (loss if fn is None else fn)(logits, labels).backward()
        logits.grad = None
        for p in loss.parameters():
            p.grad = None
    return step


def time_once(fn: Callable[[], None], inner: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - start) / inner


def bench_group(steps: dict[str, Callable[[], None]], inner: int, rounds: int, device: torch.device,
                refs: list[float]) -> dict[str, float]:
    """Median ratios to the reference of every variant in `steps`, and ``name/peer`` (same-round times)."""
    names = [n for n in steps if n != "ref"]
    for fn in steps.values():  # warm-up (compiles the compiled variant)
        time_once(fn, inner, device)
    times: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        random.shuffle(names)
        for n in names:
            ref = time_once(steps["ref"], inner, device)
            times[n].append(time_once(steps[n], inner, device))
            ratios[n].append(times[n][-1] / ref)
            refs.append(ref)
    out = {n: statistics.median(r) for n, r in ratios.items()}
    ours = next((n for n in names if n.endswith("*") and "/" not in n), None)
    if "peer" in times and ours:
        out[f"{ours[:-1]}/peer"] = statistics.median(a / b for a, b in zip(times[ours], times["peer"]))
        out[f"{ours[:-1]}:peer"] = out.pop("peer")
    return out


def bench_config(num_classes: int, dtype: torch.dtype, args: argparse.Namespace) -> dict[str, float]:
    """Every variant of every loss at one (K, dtype); one loss object alive at a time (K×K matrices are large)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    logits = torch.randn(args.batch, num_classes, device=device).mul(3).to(dtype).requires_grad_()
    labels = torch.randint(0, num_classes, (args.batch,), device=device)
    labels[::2] = logits.detach()[::2].argmax(dim=-1)  # half the batch correct: OLS's update has rows to add
    inner = max(1, int(args.work // (args.batch * num_classes)))
    sparse = [s for s in SPARSE if s.split("/")[0] in args.losses] if num_classes > 1000 else []
    compiled = args.compile and dtype in [DTYPES[d] for d in args.compile_dtypes] and (
        args.compile_classes is None or num_classes in args.compile_classes)
    out: dict[str, float] = {}
    refs: list[float] = []
    for group in [*args.losses, *sparse, FLOOR]:
        steps = make_steps(group, num_classes, logits, labels, compiled and group != FLOOR)
        out.update(bench_group(steps, inner, args.rounds, device, refs))
        del steps
    out["ref_ms"] = statistics.median(refs) * 1e3
    return out


def _cell(r: dict[str, float], col: str) -> str:
    if col not in r:
        return "–"
    target = TARGETS.get(col.rstrip("*c").split("/")[0], 1e9) if ":" not in col and "/peer" not in col else 1e9
    return f"{r[col]:.2f}{'' if r[col] <= target else ' ✗'}"


def to_markdown(results: dict[tuple[int, str], dict[str, float]], args: argparse.Namespace, seconds: float) -> str:
    dense = [f"{n}{s}" for n in args.losses for s in ("", "*", "*c")]
    cols = dense + [f"{s}{c}" for s in SPARSE for c in ("*", "*c") if s.split("/")[0] in args.losses] + [FLOOR]
    peers = [f"{n}{s}" for n in args.losses if n in PEERS for s in ("*", "/peer", ":peer")]
    where = (f"{args.threads} CPU thread(s), {platform.processor() or platform.machine()}, {args.allocator}"
             if args.device == "cpu" else torch.cuda.get_device_name())
    lines = [
        "# Loss speed: forward+backward time / F.cross_entropy(label_smoothing=0.1), and against peer code",
        "",
        f"B={args.batch}, {args.rounds} interleaved rounds, median of per-round ratios; torch {torch.__version__}, "
        f"{where}; training mode, half the labels equal the arg-max (OLS accumulates those rows); the whole run "
        f"took {seconds / 60:.1f} min. `*` = `check_inputs=False`; `c` = `torch.compile(fullgraph=True)` "
        f"(inductor; {'/'.join(args.compile_dtypes) if args.compile else 'off'}); `/64` = sparse `top_n=64` "
        f"(K > 1000 only); `{FLOOR}` = building the gradient of a dense K×K parameter alone (zeros + B rows), the "
        "floor of dense lspp/lls. Targets: ls/ols <= 1.3, lspp/lls <= 2.0; ✗ marks a miss.",
        "",
        "| K | dtype | CE+LS ms | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    lines += [f"| {k} | {dt} | {r['ref_ms']:.2f} | " + " | ".join(_cell(r, c) for c in cols) + " |"
              for (k, dt), r in results.items()]
    lines += [
        "", "## Against the implementations users copy (`benchmarks/_peers.py`)", "",
        "`x*` = ours / cross-entropy, `x/peer` = ours / peer (below 1: ours is faster), `x:peer` = peer / "
        "cross-entropy. Peers: the widely copied OLS re-implementation (K×K buffer + index_select + log_softmax + "
        "nn.CrossEntropyLoss + index_add_), the LS++ authors' module (softmax of the whole K×(K-1) matrix every call, "
        "padded to K×K, log(p + 1e-6)), the LLS appendix pseudo-code (plain autograd); all eager.", "",
        "| K | dtype | " + " | ".join(peers) + " |", "|---|---|" + "---|" * len(peers),
    ]
    lines += [f"| {k} | {dt} | " + " | ".join(_cell(r, c) for c in peers) + " |" for (k, dt), r in results.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--work", type=float, default=1e6, help="B·K per timed call (several calls at small K)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled column")
    parser.add_argument("--compile-dtypes", nargs="+", default=["float32"], choices=list(DTYPES),
                        help="dtypes with a compiled column (each variant compiles once per K and dtype)")
    parser.add_argument("--compile-classes", type=int, nargs="+", default=None, help="K values with a compiled "
                        "column (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="results file ('-': print only)")
    parser.add_argument("--soft-only", action="store_true", help="only the soft-target (Mixup) section, K=100, 1000")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("Expected a CUDA device for --device cuda but torch.cuda.is_available() is False.")
    torch.set_num_threads(args.threads)
    args.allocator = "glibc keeps freed memory" if keep_freed_memory() else "default allocator"
    out = args.out or Path(__file__).with_name("results_loss_speed.md" if args.device == "cpu"
                                              else "results_gpu_speed.md")
    if not args.soft_only:
        class_id_tables(args, out)
    if args.device == "cpu":  # the soft-target (Mixup) section after the class-id tables
        where = f"torch {torch.__version__}, {args.threads} CPU thread(s), {platform.processor() or platform.machine()}"
        print(run_soft([k for k in args.classes if k <= 1000], {d: DTYPES[d] for d in args.dtypes}, args.rounds,
                       args.work, where, None if out.name == "-" else out))


def class_id_tables(args: argparse.Namespace, out: Path) -> None:
    """Time every loss with class ids at every (K, dtype) and write the class-id tables to `out`."""
    start, results = time.perf_counter(), {}
    for k in args.classes:
        for dt in args.dtypes:
            results[(k, dt)] = bench_config(k, DTYPES[dt], args)
            print(k, dt, {n: round(v, 2) for n, v in results[(k, dt)].items()}, flush=True)
    text = to_markdown(results, args, time.perf_counter() - start)
    if out.name != "-":
        atomic_write_bytes(out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
