"""Ready-made `train_fn` / `predict_fn` pairs for the refinery: a timm training loop and the Hugging Face Trainer.

Both read the current labels from the dataset's soft-label column and train against them with
``create_loss("soft_kl")`` (classification) or `soft_value_loss` (regression / ordinal values).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from datasets import Dataset
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from ..losses import create_loss
from ..losses.soft_kl import soft_value_loss
from .checkpoint import column_array

Collate = Callable[[list[dict[str, Any]], bool], Tensor]


def soft_loss_func(num_classes: int, task: str = "classification") -> Callable[..., Tensor]:
    """A `compute_loss_func` for `transformers.Trainer` against soft labels (or values for regression).

    The loss is ``per_sample.sum() / num_samples`` (INTEGRATION_NOTES: the Trainer treats it as already scaled
    for gradient accumulation). The Trainer counts ``labels != -100`` elements, i.e. B·K for [B, K] soft
    labels, so the count is divided by K to get samples.
    """
    kl = create_loss("soft_kl", num_classes, reduction="none") if task == "classification" else None

    def compute_loss(outputs: Any, labels: Tensor, num_items_in_batch: Tensor | int | None = None) -> Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if kl is not None:
            per_sample = kl(logits, labels.float())
        else:
            per_sample = soft_value_loss(logits, labels.float(), reduction="none")
        if num_items_in_batch is None:
            return per_sample.mean()
        per_row = labels[0].numel() if labels.ndim > 1 else 1
        return per_sample.sum() / (num_items_in_batch / per_row)

    return compute_loss


def _outputs_to_numpy(logits: Tensor | np.ndarray, task: str) -> np.ndarray:
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    return (logits.softmax(dim=-1) if task == "classification" else logits).numpy()


@dataclass
class TimmSLRAdapter:
    """timm training loop: `train(dataset, seed) -> model`, `predict(model, dataset) -> probabilities`.

    Args:
        num_classes: K (model outputs); 1 (or D) for regression.
        model_name: A timm model name for ``timm.create_model(model_name, num_classes=..., **model_kwargs)``.
        model_fn: Alternatively ``model_fn() -> nn.Module`` (any torch module; still trained with timm's optimizer).
        collate: ``collate(examples, train) -> input tensor`` (image transforms go here); default reads the
            numeric `input_column` once as a float32 tensor.
        tta_flip: SLR-a for images: average predictions over the input and its horizontal flip.
        epochs, batch_size, opt, lr, weight_decay: Training settings (``timm.optim.create_optimizer_v2``),
            cosine learning-rate decay per step.
    """

    num_classes: int
    model_name: str | None = None
    model_fn: Callable[[], nn.Module] | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    input_column: str = "pixel_values"
    soft_label_column: str = "soft_label"
    collate: Collate | None = None
    task: str = "classification"
    epochs: int = 10
    batch_size: int = 64
    opt: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    device: str = "cpu"
    tta_flip: bool = False

    def build_model(self) -> nn.Module:
        """A fresh model (call after seeding)."""
        if self.model_fn is not None:
            return self.model_fn()
        if self.model_name is None:
            raise ValueError("Expected `model_name` (a timm model) or `model_fn` but got neither.")
        import timm

        return timm.create_model(self.model_name, num_classes=self.num_classes, **self.model_kwargs)

    def train(self, dataset: Dataset, seed: int) -> nn.Module:
        """Train a fresh model on `dataset` against its soft-label column."""
        from timm.optim import create_optimizer_v2

        torch.manual_seed(seed)
        model = self.build_model().to(self.device).train()
        optimizer = create_optimizer_v2(model, opt=self.opt, lr=self.lr, weight_decay=self.weight_decay)
        loader = self._loader(dataset, train=True, seed=seed)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, self.epochs * len(loader)))
        loss_fn = create_loss("soft_kl", self.num_classes) if self.task == "classification" else soft_value_loss
        for _ in range(self.epochs):
            for inputs, targets in loader:
                loss = loss_fn(model(inputs.to(self.device)), targets.to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
        return model.eval()

    @torch.no_grad()
    def predict(self, model: nn.Module, dataset: Dataset) -> np.ndarray:
        """Probabilities [n, K] (values for regression), averaged over flips when `tta_flip`."""
        model.eval()
        outputs = []
        for inputs, _ in self._loader(dataset, train=False, seed=0):
            inputs = inputs.to(self.device)
            out = torch.as_tensor(_outputs_to_numpy(model(inputs).float().cpu(), self.task))
            if self.tta_flip:
                flipped = _outputs_to_numpy(model(inputs.flip(-1)).float().cpu(), self.task)
                out = (out + torch.as_tensor(flipped)) / 2
            outputs.append(out)
        return torch.cat(outputs).numpy()

    def _collate(self, examples: list[dict[str, Any]], train: bool) -> tuple[Tensor, Tensor]:
        inputs = self.collate(examples, train)  # type: ignore[misc]
        if self.soft_label_column not in examples[0]:
            return inputs, torch.zeros(len(examples))
        return inputs, torch.tensor(np.asarray([e[self.soft_label_column] for e in examples]), dtype=torch.float32)

    def _loader(self, dataset: Dataset, train: bool, seed: int) -> DataLoader:
        """Batches of (inputs, targets); numeric columns without `collate` are read once as tensors (fast)."""
        generator = torch.Generator().manual_seed(seed)
        if self.collate is None:
            columns = [c for c in (self.input_column, self.soft_label_column) if c in dataset.column_names]
            tensors = [torch.from_numpy(column_array(dataset, c)) for c in columns]
            if len(tensors) == 1:
                tensors.append(torch.zeros(len(dataset)))
            return DataLoader(TensorDataset(*tensors), batch_size=self.batch_size, shuffle=train, generator=generator)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, generator=generator,
                          collate_fn=lambda examples: self._collate(examples, train), drop_last=False)


@dataclass
class HFTrainerSLRAdapter:
    """Hugging Face `Trainer` pair: a plain Trainer with `compute_loss_func=soft_loss_func(K)`.

    Args:
        model_init: ``model_init() -> PreTrainedModel`` giving a fresh model (num_labels=K, or 1 for regression).
        args: `TrainingArguments`; each fold gets a copy with its own seed and output subfolder.
        num_classes: K.
        data_collator: Passed to the Trainer (e.g. `DataCollatorWithPadding` for text; for images a collator
            that applies the training transforms to raw images, with ``remove_unused_columns=False``).
        eval_data_collator: Collator for predictions (e.g. without random augmentation); default `data_collator`.
        label_column: The original label column, dropped before training (else the collator would use it).
        tta_flip: SLR-a for images: average predictions over ``pixel_values`` and their horizontal flip.
    """

    model_init: Callable[[], Any]
    args: Any
    num_classes: int
    soft_label_column: str = "soft_label"
    label_column: str = "label"
    task: str = "classification"
    data_collator: Any = None
    eval_data_collator: Any = None
    tta_flip: bool = False
    _fold: int = field(default=0, repr=False)

    def train(self, dataset: Dataset, seed: int) -> Any:
        """Train a fresh model with the Trainer against the soft labels; returns the model."""
        from transformers import Trainer, set_seed

        set_seed(seed)
        self._fold += 1
        args = self._args(seed, f"slr-model-{self._fold:03d}")
        drop = [c for c in (self.label_column, "label_ids", "labels") if c in dataset.column_names]
        train_set = dataset.remove_columns(drop).rename_column(self.soft_label_column, "labels")
        trainer = Trainer(model=self.model_init(), args=args, train_dataset=train_set, data_collator=self.data_collator,
                          compute_loss_func=soft_loss_func(self.num_classes, self.task))
        trainer.train()
        assert trainer.model is not None  # the Trainer was given one
        return trainer.model.eval()

    def predict(self, model: Any, dataset: Dataset) -> np.ndarray:
        """Softmax of `Trainer.predict` logits (values for regression) on a dataset without labels."""
        unused = (self.label_column, "label_ids", "labels", self.soft_label_column)
        drop = [c for c in unused if c in dataset.column_names]
        dataset = dataset.remove_columns(drop)
        collator = self.eval_data_collator or self.data_collator
        out = self._predict_with(model, dataset, collator)
        if self.tta_flip:
            out = (out + self._predict_with(model, dataset, _FlipCollator(collator))) / 2
        return out

    def _predict_with(self, model: Any, dataset: Dataset, collator: Any) -> np.ndarray:
        from transformers import Trainer

        trainer = Trainer(model=model, args=self._args(self.args.seed, "slr-predict"), data_collator=collator)
        logits = trainer.predict(dataset).predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return _outputs_to_numpy(logits, self.task)

    def _args(self, seed: int, subdir: str) -> Any:
        args = copy.deepcopy(self.args)
        args.seed, args.output_dir = seed, os.path.join(self.args.output_dir, subdir)
        return args


@dataclass
class _FlipCollator:
    """Wraps a collator (None: the Trainer's default) and flips ``pixel_values`` horizontally (SLR-a)."""

    collator: Any = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers import default_data_collator

        batch = (self.collator or default_data_collator)(examples)
        batch["pixel_values"] = batch["pixel_values"].flip(-1)
        return batch
