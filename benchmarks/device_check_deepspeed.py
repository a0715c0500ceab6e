"""Device-check case: is a learned matrix's optimizer right under DeepSpeed (ZeRO through the Trainer's --deepspeed)?

DeepSpeed scales the loss (fp16), accumulates gradients and steps the model's optimizer itself; the matrix of lspp /
lls has its own optimizer (`RelationOptimizer`). This trains the tests' tiny ConvNeXt on digits with lls for 2 epochs
in bf16 and fp16, once plain and once under ZeRO-2 (one process), and compares how far each matrix moved from
uniform. Until this passes on a GPU, `LabelSmoothingTrainingArguments` refuses --deepspeed with a learned matrix
(this run lifts the refusal with HF_LABELSMOOTH_UNCHECKED_DEEPSPEED=1). DeepSpeed cannot be installed on the
project's CPU machines (its build pulls a CUDA torch), so this runs only where ``import deepspeed`` works.

Usage: python benchmarks/device_check_deepspeed.py   (prints one Markdown section; exit 0 when it passed or was
skipped, 1 when a matrix differs)
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile

import torch


def _matrix(out: str, precision: str, deepspeed: dict | None) -> torch.Tensor:
    from tests.support.trainer_digits import train_digits

    overrides = {precision: True, "use_cpu": False, "gradient_accumulation_steps": 2}
    if deepspeed is not None:
        overrides["deepspeed"] = deepspeed
    trainer = train_digits(out, "lls", batch=16, n_train=128, **overrides)
    return trainer.relation_loss.relation_matrix().detach().float().cpu()


def main() -> int:
    if not torch.cuda.is_available() or importlib.util.find_spec("deepspeed") is None:
        print("## DeepSpeed\n\nSkipped: needs a CUDA GPU and `pip install deepspeed`.\n")
        return 0
    os.environ.update({"HF_LABELSMOOTH_UNCHECKED_DEEPSPEED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533",
                       "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"})
    lines, ok = ["## DeepSpeed ZeRO-2: the matrix's optimizer", "", "| precision | moved (plain) | moved (ZeRO-2) | "
                 "relative difference | ok |", "|---|---|---|---|---|"], True
    for precision in ("bf16", "fp16"):
        zero = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto",
                "gradient_accumulation_steps": "auto", precision: {"enabled": "auto"}}
        with tempfile.TemporaryDirectory() as tmp:
            plain, ds = _matrix(f"{tmp}/plain", precision, None), _matrix(f"{tmp}/ds", precision, zero)
        uniform = torch.full_like(plain, 1.0 / plain.shape[0])
        moved = (plain - uniform).norm().item()
        diff = (ds - plain).norm().item() / max(moved, 1e-12)
        passed = moved > 1e-3 and diff < 0.1
        ok &= passed
        lines.append(f"| {precision} | {moved:.4f} | {(ds - uniform).norm().item():.4f} | {diff:.3f} | "
                     f"{'yes' if passed else '**NO**'} |")
    print("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.support, run as a file
    sys.exit(main())
