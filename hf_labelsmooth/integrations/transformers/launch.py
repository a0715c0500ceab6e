"""How the process was launched (python, torchrun, accelerate launch) against what the Trainer will do.

Checked while `LabelSmoothingTrainingArguments` are built, before any data or model is loaded:

- On a machine with no accelerator the run is a CPU run, as the Trainer already picks the CPU for one process:
  ``use_cpu`` is set, so ``torchrun --nproc_per_node N`` (or ``accelerate launch --multi_gpu``) trains as real
  N-process DDP over gloo instead of N independent trainings writing one ``output_dir``, and ``--bf16`` autocasts.
- ``--fp16`` on the CPU is refused: the CPU has no fp16 autocast in the Trainer, it would train in fp32 silently.
- ``accelerate launch --num_processes N`` without ``--multi_gpu`` on a machine with no GPU starts one process:
  refused, naming the launch that starts N.
- A process group of N processes whose Trainer is not distributed is refused (N trainings would write one folder).
- ``--deepspeed`` with a learned matrix (lspp, lls) is refused until its optimizer is checked under DeepSpeed.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["accelerator_available", "check_deepspeed", "check_launch", "prepare_launch", "requested_processes"]


def accelerator_available() -> bool:
    """Whether torch sees a GPU or another accelerator (CUDA, ROCm, MPS, XPU, ...)."""
    current = getattr(torch, "accelerator", None)
    if current is not None and hasattr(current, "is_available"):
        return bool(current.is_available())
    return torch.cuda.is_available()


def launched_world_size() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``, set by torchrun and accelerate), else 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def requested_processes() -> int:
    """``--num_processes N`` of the ``accelerate launch`` that started this process, else 1.

    accelerate starts one process (its simple launcher) for ``--num_processes N`` on a machine with no GPU unless
    told ``--multi_gpu``, and passes no count in the environment: the parent's command line is the only trace.
    """
    if "ACCELERATE_DYNAMO_BACKEND" not in os.environ or "WORLD_SIZE" in os.environ:
        return 1  # not started by accelerate launch, or started by a multi-process launcher
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return 1
    for i, token in enumerate(argv):
        flag, _, value = token.partition("=")
        if flag in ("--num_processes", "--num-processes"):
            value = value or (argv[i + 1] if i + 1 < len(argv) else "1")
            return int(value) if value.isdigit() else 1
    return 1


def prepare_launch(args: Any) -> None:
    """Before the Trainer sets up devices: CPU when there is no accelerator; refuse launches that cannot be real.

    Raises:
        ValueError: ``--fp16`` on a CPU run, or ``accelerate launch --num_processes N`` that started one process.
    """
    requested = requested_processes()
    if requested > 1:
        raise ValueError(f"Expected {requested} processes from `accelerate launch --num_processes {requested}` but "
                         "accelerate started 1 (without a GPU it runs one process). Launch with `accelerate launch "
                         f"--multi_gpu --num_processes {requested} ...` or `torchrun --nproc_per_node {requested} "
                         "...` (both train on the CPU here).")
    check_deepspeed(args)
    cpu_run = args.use_cpu or os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes")
    if not cpu_run and not args.deepspeed and not accelerator_available():
        args.use_cpu = True  # what the Trainer does for one process; N processes then run real DDP over gloo
        if launched_world_size() > 1:
            logger.info("No GPU: the %d processes train on the CPU as one DDP run (gloo).", launched_world_size())
        cpu_run = True
    if cpu_run and args.fp16:
        raise ValueError("Expected --bf16 or no half precision on the CPU but got --fp16: the Trainer has no fp16 "
                         "autocast on the CPU and would train in float32. Drop --fp16, or use --bf16.")


DEEPSPEED_ENV = "HF_LABELSMOOTH_UNCHECKED_DEEPSPEED"


def check_deepspeed(args: Any) -> None:
    """DeepSpeed owns loss scaling, gradient accumulation and the optimizer step: a learnable matrix's own optimizer
    (`RelationOptimizer`) is not checked under it (DeepSpeed cannot be installed on the project's CPU machines; the
    case is `benchmarks/device_check_deepspeed.py`, run by ``benchmarks/device_check.sh`` on a GPU). Refused until
    then, unless ``HF_LABELSMOOTH_UNCHECKED_DEEPSPEED=1`` (the device check sets it).

    Raises:
        ValueError: ``--deepspeed`` with a method that learns its matrix by gradient (lspp, lls).
    """
    from ...losses.registry import get_loss_class, is_loss

    method = getattr(args, "label_smoothing_method", "ce")
    if not args.deepspeed or not is_loss(method) or not get_loss_class(method).requires_optimizer:
        return
    if os.environ.get(DEEPSPEED_ENV, "") not in ("", "0"):
        return
    raise ValueError(f"Expected no --deepspeed with --label_smoothing_method {method} but got --deepspeed "
                     f"{args.deepspeed}: DeepSpeed scales the loss and steps the optimizer itself, and the matrix's "
                     "own optimizer is not checked under it yet. Use DDP (torchrun) or --fsdp, or a method without a "
                     "learned matrix (ols, ls, relation_prior).")


def check_launch(args: Any) -> None:
    """After the devices are set up: as many distributed processes as the launcher started.

    Raises:
        ValueError: A launcher started N processes but the Trainer of this one is not distributed.
    """
    launched = launched_world_size()
    if launched > 1 and args.world_size != launched:
        raise ValueError(f"Expected one distributed Trainer across the {launched} launched processes but got a "
                         f"Trainer of world size {args.world_size} (parallel mode {args.parallel_mode.value}): "
                         f"{launched} separate trainings would write one --output_dir. Pass --use_cpu for a CPU "
                         "run, or launch one process with python.")
