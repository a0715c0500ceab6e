"""The tiny ConvNeXt digits run of `trainer_digits`, on the stock `transformers.Trainer` with
`hf_labelsmooth.compute_loss_func` (to compare with `LabelSmoothingTrainer`)."""
from __future__ import annotations

import os
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_labelsmooth import compute_loss_func, get_loss_class
from tests.support.trainer_digits import CrashAfterSave, DigitsDataset, Interrupt, digits_args, tiny_model

RELATION_FIELDS = ("label_smoothing_method", "label_smoothing_alpha", "relation_update_every", "relation_lr",
                   "relation_weight_decay", "relation_matrix", "relation_top_n")


def stock_args(out: str, method: str, batch: int, **overrides: Any) -> TrainingArguments:
    """`digits_args` as plain `TrainingArguments` (the loss options go to `compute_loss_func`)."""
    args = digits_args(out, "ce", batch, **overrides)  # the loss options go to compute_loss_func
    return TrainingArguments(**{k: v for k, v in args.to_dict().items()
                                if k not in RELATION_FIELDS and k in TrainingArguments.__dataclass_fields__
                                and TrainingArguments.__dataclass_fields__[k].init})


def stock_trainer(out: str, method: str, batch: int = 32, n_train: int = 256, seed: int = 0,
                  callbacks: list[TrainerCallback] | None = None, eval_dataset: Any = None,
                  loss_options: dict[str, Any] | None = None,
                  **overrides: Any) -> Trainer:
    """A stock Trainer with the loss `method` (`relation_lr` 0.05 for learnable matrices, as `digits_args`)."""
    options = {"relation_lr": 0.05} if get_loss_class(method).spec.requires_optimizer else {}
    options.update(loss_options or {})
    loss_func = compute_loss_func(method, num_labels=10, **options)
    return Trainer(model=tiny_model(seed), args=stock_args(out, method, batch, **overrides),
                   train_dataset=DigitsDataset(n_train), eval_dataset=eval_dataset, compute_loss_func=loss_func,
                   callbacks=[loss_func.callback, *(callbacks or [])])


def stock_interrupted_then_resumed(out: str, method: str, batch: int, n_train: int, save_steps: int,
                                   **overrides: Any) -> Trainer:
    """Train until the first checkpoint (crash), then resume from it in a new trainer; returns the resumed one."""
    kwargs = dict(batch=batch, n_train=n_train, save_strategy="steps", save_steps=save_steps, **overrides)
    try:
        stock_trainer(out, method, callbacks=[CrashAfterSave()], **kwargs).train()
    except Interrupt:
        pass
    resumed = stock_trainer(out, method, seed=1, **kwargs)
    resumed.train(resume_from_checkpoint=os.path.join(out, f"checkpoint-{save_steps}"))
    return resumed


def train_stock(out: str, method: str, batch: int = 32, n_train: int = 256, **overrides: Any) -> Trainer:
    """`trainer_digits.train_digits` on the stock Trainer; returns it after `train()`."""
    trainer = stock_trainer(out, method, batch=batch, n_train=n_train, **overrides)
    trainer.train()
    return trainer
