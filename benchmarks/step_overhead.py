"""Training-step overhead of each loss vs plain cross-entropy: timm resnet18, K=1000, 224 px, CPU.

Run: ``python benchmarks/step_overhead.py`` (a few minutes; ``--trainer-only``: the Trainer section alone). Writes
``results_step_overhead.md``; its Trainer section (`_trainer_step.py`) times `LabelSmoothingTrainer` + each method
against the stock Trainer with ``label_smoothing_factor``; with ``--timm-train path/to/train.py`` (timm's training
script, from a clone of pytorch-image-models) its timm section (`_timm_step.py`) times train.py through
``hf-labelsmooth timm-train`` against train.py alone (``--timm-only``: that section alone). One step is
forward, loss, backward and an SGD step (the network's and, for lspp/lls, the loss's K×K parameter). Steps are
interleaved: every round times one cross-entropy step right before each loss's step (shuffled order), and the
ratio is the median over rounds of (loss step / cross-entropy step). Target: <= 1.01.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import timm
import torch
import torch.nn.functional as F

from _alloc import keep_freed_memory
from _timm_step import run_timm
from _trainer_step import run_trainer
from hf_labelsmooth import create_loss
from hf_labelsmooth._io import atomic_write_bytes

LOSSES = ("ls", "ols", "lspp", "lls")


def make_step(name: str, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One training step with loss `name` ("ce" = F.cross_entropy)."""
    loss_fn = create_loss(name, 1000).train() if name != "ce" else None
    groups = [{"params": list(model.parameters())}]
    if loss_fn is not None and loss_fn.spec.requires_optimizer:  # lls: no decay on its matrix (relation_weight_decay)
        wd = 1e-4 if loss_fn.spec.relation_weight_decay is None else loss_fn.spec.relation_weight_decay
        groups.append({"params": list(loss_fn.parameters()), "weight_decay": wd})
    opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        logits = model(images)
        loss = F.cross_entropy(logits, labels) if loss_fn is None else loss_fn(logits, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def isolated_cost(name: str, batch: int, reps: int = 200) -> float:
    """Median seconds of the loss's own work in a step: forward+backward on fixed logits + SGD on its parameters,
    minus the same for F.cross_entropy (a precise overhead estimate; the whole-step ratio is noisier)."""
    logits = torch.randn(batch, 1000).requires_grad_()
    labels = torch.randint(0, 1000, (batch,))
    loss_fn = create_loss(name, 1000).train()
    wd = 1e-4 if loss_fn.spec.relation_weight_decay is None else loss_fn.spec.relation_weight_decay
    opt = torch.optim.SGD(loss_fn.parameters(), lr=1e-3, momentum=0.9, weight_decay=wd) if (
        loss_fn.spec.requires_optimizer) else None

    def ours() -> None:
        loss_fn(logits, labels).backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        logits.grad = None

    def ce() -> None:
        F.cross_entropy(logits, labels).backward()
        logits.grad = None
    diffs = [timed(ours) - timed(ce) for _ in range(reps)]
    return statistics.median(diffs)


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_step_overhead.md"))
    parser.add_argument("--trainer-only", action="store_true", help="only the Trainer section (transformers)")
    parser.add_argument("--timm-train", type=Path, help="timm's train.py: adds the timm train.py section")
    parser.add_argument("--timm-only", action="store_true", help="only the timm train.py section")
    parser.add_argument("--timm-rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.timm_only and args.timm_train is None:
        parser.error("Expected --timm-train PATH (timm's train.py, from a clone of pytorch-image-models) with "
                     "--timm-only but got none.")
    if not (args.trainer_only or args.timm_only):
        resnet_table(args)
    if not args.timm_only:
        print(run_trainer(args.out, LOSSES))
    if args.timm_train is not None:
        print(timm_section(args))


def timm_section(args: argparse.Namespace) -> str:
    """The timm train.py rows, with the command that produced them (train.py's path as a placeholder)."""
    if not args.timm_train.is_file():
        raise SystemExit(f"step_overhead.py: error: Expected --timm-train to be timm's train.py but got "
                         f"{str(args.timm_train)!r} (no such file). Take it from a clone of "
                         "github.com/huggingface/pytorch-image-models.")
    argv = ["path/to/train.py" if a == str(args.timm_train) else a for a in sys.argv[1:]]
    where = f"CPU, 1 thread, torch {torch.__version__}, timm {timm.__version__}, {platform.machine()}"
    return run_timm(args.out, args.timm_train, LOSSES, "`python benchmarks/step_overhead.py " + " ".join(argv) + "`",
                    where, rounds=args.timm_rounds)


def resnet_table(args: argparse.Namespace) -> None:
    """Time the timm resnet18 steps and write the main table to `args.out`."""
    allocator = "glibc keeps freed memory" if keep_freed_memory() else "default allocator"
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=1000).train()
    images, labels = torch.randn(args.batch, 3, 224, 224), torch.randint(0, 1000, (args.batch,))
    steps = {n: make_step(n, model, images, labels) for n in ("ce", *LOSSES)}
    for fn in steps.values():
        fn()
    ratios: dict[str, list[float]] = {n: [] for n in LOSSES}
    ce_times: list[float] = []
    for _ in range(args.rounds):
        order = list(LOSSES)
        random.shuffle(order)
        for n in order:
            ce = timed(steps["ce"])
            ratios[n].append(timed(steps[n]) / ce)
            ce_times.append(ce)
    lines = [
        "# Training-step overhead vs cross-entropy (timm resnet18, K=1000, 224 px)",
        "",
        f"Batch {args.batch}, CPU, {args.threads} thread(s), {args.rounds} interleaved rounds; forward + loss + "
        f"backward + SGD step; torch {torch.__version__}, timm {timm.__version__}, "
        f"{platform.processor() or platform.machine()}, {allocator}. Median cross-entropy step: "
        f"{statistics.median(ce_times) * 1e3:.0f} ms. Target: ratio <= 1.01.",
        "",
        "Isolated = the loss's own extra work per step (its forward+backward on the step's logits and the SGD "
        "update of its own parameters, minus F.cross_entropy's; median of 200 alternating pairs) divided by the "
        "median cross-entropy step: the overhead without the whole step's timing noise.",
        "",
        "| loss | whole-step median ratio | IQR of per-round ratios | isolated extra ms | isolated ratio | "
        "target met (isolated) |",
        "|---|---|---|---|---|---|",
    ]
    ce_step = statistics.median(ce_times)
    for n in LOSSES:
        q = statistics.quantiles(ratios[n], n=4)
        med, extra = statistics.median(ratios[n]), isolated_cost(n, args.batch)
        iso = 1 + extra / ce_step
        lines.append(f"| {n} | {med:.3f} | {q[0]:.3f}–{q[2]:.3f} | {extra * 1e3:.2f} | {iso:.4f} | "
                     f"{'yes' if iso <= 1.01 else 'no'} |")
    atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
