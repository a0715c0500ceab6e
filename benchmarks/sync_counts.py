"""Host syncs per training step of every registered loss on the path an accelerator runs (CPU, `may_sync` off).

Usage: ``PYTHONPATH=. python benchmarks/sync_counts.py [OUT.md]`` (from the repo root: it reuses the tests' cases).
Works on any checkout of the package: it switches every module's `may_sync` off by name, so a release without
`functional.host_shortcuts` is measured the same way.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch

from hf_labelsmooth._io import atomic_write_bytes
from tests.support.loss_cases import global_batches, loss_cases, make_case_loss
from tests.support.syncs import SyncCounter


def _no_shortcuts() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("hf_labelsmooth.") and hasattr(module, "may_sync"):
            module.may_sync = lambda x: False  # type: ignore[attr-defined]


def count(case, check_inputs: bool) -> Counter[str]:
    """Sync ops of the case's steps 2..6 (step 1 may build caches), summed."""
    loss = make_case_loss(case, check_inputs=check_inputs).train()
    total: Counter[str] = Counter()
    for i, (logits, target) in enumerate(global_batches(case)):
        x = logits.clone().requires_grad_(True)
        with SyncCounter() as counter:
            loss(x, target).backward()
        if i:
            total.update(counter.counts)
    return total


def main(out: str | None = None) -> str:
    _no_shortcuts()
    rows = ["| case | check_inputs | syncs / step | ops |", "|---|---|---|---|"]
    for case in loss_cases(("hard", "mixup", "tokens")):
        for check in (True, False):
            counts = count(case, check)
            steps = len(global_batches(case)) - 1
            rows.append(f"| {case.id} | {check} | {sum(counts.values()) / steps:.1f} | "
                        f"{', '.join(f'{k}×{v}' for k, v in sorted(counts.items())) or '-'} |")
    text = (f"# Host syncs per step (torch {torch.__version__})\n\n"
            "Command: `PYTHONPATH=. python benchmarks/sync_counts.py benchmarks/results_syncs.md`; the path a GPU "
            "runs (`host_shortcuts(False)`), forward + backward of every step after the first, counted by "
            "`tests/support/syncs.py::SyncCounter`.\n\n" + "\n".join(rows) + "\n")
    if out:
        atomic_write_bytes(Path(out), text.encode())
    return text


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else None))
