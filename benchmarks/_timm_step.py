"""The timm rows of `step_overhead.py`: timm's own train.py alone (``--smoothing 0.1``) vs the same train.py through
``hf-labelsmooth timm-train`` with each method, without and with Mixup (``--mixup 0.2``).

Every run is a subprocess (the user's command) on a small digits image folder, CPU, ``--workers 0``, one thread. A
step's time is train.py's own logged ``Time:`` of each batch (``--log-interval 1``; read from its samples/s, which
has more digits), a full iteration of its loop (data, Mixup, forward, loss, backward, optimizer step, logging), in
thread CPU time (`_thread_clock`). The first step of each epoch (loader start) is left out, so is the epoch end
(OLS swap, deferred checks: once per epoch). Each round runs every configuration once, in shuffled order; a ratio
is the median over rounds of (median step of the method's run / median step of train.py alone, same Mixup, same
round). The whole-step ratio carries the noise of a shared machine; the isolated column is the method's own extra
work per step (its loss forward + backward on the step's [batch, 10] logits and the SGD update of its matrix, minus
train.py's criterion on the same logits; median of alternating pairs) over train.py's median step.
"""
from __future__ import annotations

import os
import random
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _sections import write_section

HEADER = "## timm train.py step"
ROOT = Path(__file__).resolve().parents[1]
CLOCK = Path(__file__).with_name("_thread_clock.py")
# train.py's log line of one batch: "Train: 0 [   3/10 ( 40%)]  Loss: ... Time: 0.103s,  311.74/s  (...)"
STEP_LINE = re.compile(r"Train: (\d+) \[\s*(\d+)/\s*\d+ .*?Time: [\d.]+s,\s*([\d.]+)/s")
TARGET = 1.02
STEPS = 20  # training steps per epoch (the last partial batch is dropped)


def step_seconds(log: str, batch: int) -> list[float]:
    """Seconds of each logged step but the first of each epoch (`batch` samples / train.py's samples per second)."""
    return [batch / float(rate) for _, step, rate in STEP_LINE.findall(log) if int(step) > 0]


def train_args(data: Path, out: Path, model: str, batch: int, epochs: int, mixup: bool) -> list[str]:
    """train.py's flags of every run (the launcher sets ``--smoothing 0`` itself)."""
    return ["--data-dir", str(data), "--output", str(out.parent), "--experiment", out.name, "--device", "cpu",
            "--model", model, "--num-classes", "10", "--img-size", "32", "--crop-pct", "1.0", "--epochs", str(epochs),
            "--warmup-epochs", "0", "--workers", "0", "--no-aug", "--log-interval", "1", "--checkpoint-hist", "1",
            "-b", str(batch), *(["--mixup", "0.2"] if mixup else [])]


def command(train_py: Path, method: str | None, flags: list[str]) -> list[str]:
    """train.py alone (`method` None, ``--smoothing 0.1``) or through the launcher with `method`."""
    if method is None:
        return [sys.executable, str(CLOCK), str(train_py), *flags, "--smoothing", "0.1"]
    return [sys.executable, str(CLOCK), "-m", "hf_labelsmooth.cli", "timm-train", str(train_py), "--loss-type", method,
            *flags]


def run_once(cmd: list[str], batch: int) -> float:
    """Median step seconds of one run (its output folder is thrown away)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this checkout's library
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": path,
                                                                               "OMP_NUM_THREADS": "1"})
    times = step_seconds(proc.stdout + proc.stderr, batch)
    if proc.returncode != 0 or not times:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"Expected a finished train.py run with logged steps but got exit {proc.returncode}, "
                           f"{len(times)} steps: {' '.join(cmd)}\n{tail}")
    return statistics.median(times)


def timm_rows(train_py: Path, methods: tuple[str, ...], rounds: int, batch: int, epochs: int,
              model: str) -> dict[str, Any]:
    """Per-round ratios of every (method, mixup) against train.py alone with the same Mixup."""
    configs = [(method, mixup) for mixup in (False, True) for method in (None, *methods)]
    times: dict[tuple[str | None, bool], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "digits"
        make_digits = runpy.run_path(str(ROOT / "train_scripts" / "prepare_demo_data.py"))["make_digits_imagefolder"]
        make_digits(data, n_train=STEPS * batch + batch // 2, n_val=40)
        for r in range(rounds):
            for i, (method, mixup) in enumerate(random.sample(configs, len(configs))):
                flags = train_args(data, Path(tmp) / f"run{r}-{i}", model, batch, epochs, mixup)
                times[(method, mixup)].append(run_once(command(train_py, method, flags), batch))
                print(f"round {r}: {method or 'train.py'}{' mixup' if mixup else ''} "
                      f"{times[(method, mixup)][-1] * 1e3:.1f} ms", flush=True)
    return {"times": times, "ratios": {(m, mix): [t / b for t, b in zip(times[(m, mix)], times[(None, mix)])]
                                       for m, mix in configs if m is not None}}


def isolated_extra(method: str, mixup: bool, batch: int, reps: int = 300) -> float:
    """Median thread-CPU seconds of the method's loss step minus train.py's criterion's, on the same logits."""
    import torch
    from timm.data.mixup import mixup_target
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    from hf_labelsmooth.integrations.timm import create_classification_loss

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(batch, 10, generator=g).requires_grad_(), torch.randint(0, 10, (batch,), generator=g)
    theirs = SoftTargetCrossEntropy() if mixup else LabelSmoothingCrossEntropy(0.1)
    their_target = mixup_target(labels, 10, 0.7, 0.1) if mixup else labels  # train.py: --smoothing 0.1
    our_target = mixup_target(labels, 10, 0.7, 0.0) if mixup else labels  # the launcher: --smoothing 0
    loss = create_classification_loss(method, num_classes=10).train()
    params = list(loss.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9) if params else None

    def ours() -> None:
        loss(logits, our_target).backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad()
        logits.grad = None

    def timm_criterion() -> None:
        theirs(logits, their_target).backward()
        logits.grad = None
    return statistics.median(_cpu_seconds(ours) - _cpu_seconds(timm_criterion) for _ in range(reps))


def _cpu_seconds(fn: Callable[[], None]) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def timm_markdown(result: dict[str, Any], command_line: str, where: str, batch: int, epochs: int, rounds: int,
                  model: str) -> str:
    """The section: one row per (method, Mixup), the base step's median ms, the command."""
    base = {mix: statistics.median(result["times"][(None, mix)]) * 1e3 for mix in (False, True)}
    lines = [HEADER, "", f"timm's own train.py, unmodified, alone (`--smoothing 0.1`) vs through `hf-labelsmooth "
             f"timm-train` (`--smoothing 0`, the method smooths), `{model}` from scratch at 32 px, K = 10 digits, "
             f"batch {batch}, {epochs} epochs of {STEPS - 1} timed steps per run, {rounds} interleaved rounds, "
             f"{where}. A step is train.py's own logged `Time:` (data, Mixup, forward, loss, backward, optimizer), "
             f"in thread CPU time; the first step of each epoch and the epoch end are not in it. Median train.py "
             f"step: {base[False]:.1f} ms, {base[True]:.1f} ms with Mixup. Target: ratio <= {TARGET}.", "",
             "| method | Mixup | step ratio vs train.py alone | IQR of per-round ratios | target met | isolated extra "
             "ms | isolated ratio |", "|---|---|---|---|---|---|---|"]
    for (method, mixup), ratios in result["ratios"].items():
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        med, extra = statistics.median(ratios), result["isolated"][(method, mixup)] * 1e3
        lines.append(f"| {method} | {'0.2' if mixup else 'no'} | {med:.3f} | {q[0]:.3f}–{q[2]:.3f} | "
                     f"{'yes' if med <= TARGET else 'no'} | {extra:.3f} | {1 + extra / base[mixup]:.4f} |")
    lines += ["", f"Command: {command_line}", "", "Each run: `python path/to/train.py FLAGS --smoothing 0.1` and "
              "`hf-labelsmooth timm-train path/to/train.py --loss-type METHOD FLAGS` with FLAGS = `" +
              " ".join(train_args(Path("DIGITS"), Path("OUT/run"), model, batch, epochs, False)) + " [--mixup 0.2]`."]
    return "\n".join(lines) + "\n"


def run_timm(out: Path, train_py: Path, methods: tuple[str, ...], command_line: str, where: str, rounds: int = 4,
             batch: int = 32, epochs: int = 2, model: str = "resnet10t") -> str:
    """Time the timm rows and write their section into `out` (the other sections kept)."""
    result = timm_rows(train_py, methods, rounds, batch, epochs, model)
    result["isolated"] = {key: isolated_extra(key[0], key[1], batch) for key in result["ratios"]}
    section = timm_markdown(result, command_line, where, batch, epochs, rounds, model)
    write_section(out, HEADER, section)
    return section
