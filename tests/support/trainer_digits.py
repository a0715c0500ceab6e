"""Tiny ConvNeXt on scikit-learn's digits with `LabelSmoothingTrainer`: helpers for the tests, and a torchrun script.

As a script (``torchrun --nproc_per_node 2 tests/support/trainer_digits.py OUT METHOD... --batch B``) it trains each
method and writes ``OUT/{method}.rank{r}.pt`` holding the final matrix and model weights of every rank.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch.utils.data import Dataset
from transformers import ConvNextConfig, ConvNextForImageClassification, TrainerCallback

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments, get_loss_class

LABELS = [str(i) for i in range(10)]


class DigitsDataset(Dataset):
    """The first `n` digits (8×8, upscaled ×2 to 16×16, standardised) as ``{"pixel_values", "labels"}``."""

    def __init__(self, n: int, offset: int = 0) -> None:
        digits = load_digits()
        images = (digits.images[offset:offset + n].astype(np.float32) - 4.9) / 6.0
        images = images.repeat(2, axis=1).repeat(2, axis=2)
        self.pixels = torch.from_numpy(images)[:, None]
        self.labels = torch.from_numpy(digits.target[offset:offset + n].astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[i], "labels": self.labels[i]}


def tiny_model(seed: int = 0) -> ConvNextForImageClassification:
    """A 2-stage ConvNeXt (widths 32/64, LayerNorm only, no drop path) for 1×16×16 images and 10 classes."""
    torch.manual_seed(seed)
    config = ConvNextConfig(num_channels=1, patch_size=2, num_stages=2, hidden_sizes=[32, 64], depths=[1, 1],
                            drop_path_rate=0.0, num_labels=10, id2label=dict(enumerate(LABELS)),
                            label2id={n: i for i, n in enumerate(LABELS)})
    return ConvNextForImageClassification(config)


def digits_args(out: str, method: str, batch: int, **overrides: Any) -> LabelSmoothingTrainingArguments:
    """Deterministic CPU arguments: no shuffling differences, logging every step, no saving or reporting."""
    kwargs = dict(output_dir=out, label_smoothing_method=method, per_device_train_batch_size=batch,
                  num_train_epochs=2, learning_rate=5e-3, weight_decay=0.0, logging_steps=1,
                  save_strategy="no", report_to="none", use_cpu=True, seed=0, dataloader_num_workers=0,
                  disable_tqdm=True, max_grad_norm=0.0, log_level="error",
                  relation_lr=0.05 if get_loss_class(method).requires_optimizer else None)
    kwargs.update(overrides)
    return LabelSmoothingTrainingArguments(**kwargs)


def train_digits(out: str, method: str, batch: int = 32, n_train: int = 256, **overrides: Any) -> LabelSmoothingTrainer:
    """Train the tiny ConvNeXt on `n_train` digits with `method`; returns the trainer after `train()`."""
    trainer = LabelSmoothingTrainer(model=tiny_model(), args=digits_args(out, method, batch, **overrides),
                                    train_dataset=DigitsDataset(n_train))
    trainer.train()
    return trainer


def record_loss_inputs(trainer: LabelSmoothingTrainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record (logits, labels) of every training-mode call of the trainer's loss."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module.training:
            calls.append((args[0].detach().float().clone(), args[1].detach().clone()))

    trainer.relation_loss.register_forward_hook(hook)
    return calls


class Interrupt(Exception):
    """Raised by `CrashAfterSave` to simulate a job killed right after a checkpoint."""


class CrashAfterSave(TrainerCallback):
    """Crash every rank once all of them have finished the Trainer's save of the checkpoint.

    `on_save` runs on each rank right after that rank's part of the save; rank 0 writes most of the folder, so a
    rank that crashed (and resumed) at once could read a half-written checkpoint. The barrier waits for every rank.
    """

    def on_save(self, args, state, control, **kwargs):
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        raise Interrupt


def interrupted_then_resumed(out: str, method: str, batch: int, n_train: int, save_steps: int,
                             **overrides: Any) -> LabelSmoothingTrainer:
    """Train until the first checkpoint (crash), then resume from it in a new trainer; returns the resumed one."""
    args = digits_args(out, method, batch, save_strategy="steps", save_steps=save_steps, **overrides)
    crashing = LabelSmoothingTrainer(model=tiny_model(), args=args, train_dataset=DigitsDataset(n_train),
                                     callbacks=[CrashAfterSave()])
    try:
        crashing.train()
    except Interrupt:
        pass
    resumed = LabelSmoothingTrainer(model=tiny_model(seed=1), args=args, train_dataset=DigitsDataset(n_train))
    resumed.train(resume_from_checkpoint=os.path.join(out, f"checkpoint-{save_steps}"))
    return resumed


FSDP = {"fsdp": "full_shard", "fsdp_config": {"version": 2, "sync_module_states": False}}


def fsdp_on_cpu() -> None:
    """Let Accelerate pick FSDP for a CPU (gloo) process group, so the Trainer's FSDP path runs on this machine.

    Accelerate selects FSDP only on accelerators (on CPU `fsdp` is silently ignored: DDP). Here the group is
    reported to Accelerate as multi-GPU; devices, backend (gloo) and torch's FSDP2 are the real ones. FSDP2's
    preparation also asks every model for its input embeddings, which ConvNeXt lacks (a vision model has none).
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    init = PartialState.__init__

    def init_as_multi_gpu(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.MULTI_GPU

    PartialState.__init__ = init_as_multi_gpu
    ConvNextForImageClassification.get_input_embeddings = lambda self: None


def relation_loss(trainer: Any) -> Any:
    """The loss of a `LabelSmoothingTrainer` or of a stock Trainer's `compute_loss_func`."""
    return trainer.relation_loss if hasattr(trainer, "relation_loss") else trainer.compute_loss_func.loss


def _full_weights(trainer: Any) -> dict[str, torch.Tensor]:
    state = trainer.accelerator.get_state_dict(trainer.model)  # FSDP: gathered from the shards
    return {k: v.detach().clone() for k, v in state.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--world_size", type=int, default=2)
    parser.add_argument("--resume_check", action="store_true", help="also crash at step 3 and resume (ols, lls)")
    parser.add_argument("--fsdp", action="store_true", help="shard the model with FSDP2 through Accelerate")
    parser.add_argument("--stock", action="store_true", help="the stock Trainer with compute_loss_func")
    opts = parser.parse_args(argv)
    train, resume = train_digits, interrupted_then_resumed
    if opts.stock:
        from tests.support.stock_trainer import stock_interrupted_then_resumed, train_stock

        train, resume = train_stock, stock_interrupted_then_resumed
    overrides = FSDP if opts.fsdp else {}
    if opts.fsdp:
        fsdp_on_cpu()
    for method in opts.methods:
        trainer = train(os.path.join(opts.out, method), method, batch=opts.batch, n_train=128, **overrides)
        rank = trainer.args.process_index
        assert trainer.args.world_size == opts.world_size, f"rank {rank}: world size {trainer.args.world_size}"
        assert trainer.is_fsdp_enabled == opts.fsdp
        state = {"matrix": relation_loss(trainer).relation_matrix(),
                 **{f"model.{k}": v for k, v in _full_weights(trainer).items()},
                 "losses": torch.tensor([h["loss"] for h in trainer.state.log_history if "loss" in h])}
        torch.save(state, os.path.join(opts.out, f"{method}.rank{rank}.pt"))
        if opts.resume_check and method in ("ols", "lls"):
            resumed = resume(os.path.join(opts.out, f"{method}-resume"), method, opts.batch, 128, 3, **overrides)
            assert resumed.state.global_step == trainer.state.global_step
            torch.save({"matrix": relation_loss(resumed).relation_matrix()},
                       os.path.join(opts.out, f"{method}.resumed.rank{rank}.pt"))
    if dist.is_available() and dist.is_initialized():  # no rank tears the gloo group down while another still uses it
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
