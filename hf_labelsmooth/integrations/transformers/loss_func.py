"""`RelationLossFunction`: a relation loss for the stock `transformers.Trainer`, through its `compute_loss_func` hook.

    loss_func = hf_labelsmooth.compute_loss_func("lls", num_labels=10)
    trainer = Trainer(model, args, train_dataset=..., compute_loss_func=loss_func, callbacks=[loss_func.callback])

It is `LabelSmoothingTrainer` without the subclass, built from the same parts: `RelationOptions` (options, loss),
`RelationOptimizer` (the matrix's optimizer and schedule), `RelationLossCallback` (update periods, gradient
averaging) and `LossCheckpoint` (the loss state of each checkpoint). What a callback cannot reach is listed in
`LossFunctionCallback` and the README ("Stock Trainer").
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ...losses.base import RelationLoss
from ...options import RelationOptions
from .loss_func_callback import LossFunctionCallback

__all__ = ["RelationLossFunction", "compute_loss_func"]


class RelationLossFunction:
    """A `compute_loss_func` for `transformers.Trainer`, with its `callback` (pass both).

    Called as ``loss_func(outputs, labels, num_items_in_batch=...)``; in training it returns
    ``per_sample.sum() / num_items_in_batch`` (the Trainer's contract for a `compute_loss_func`: it multiplies by the
    number of processes and does not divide by the accumulation steps), so gradient accumulation and multi-process
    runs equal one large batch (with `average_tokens_across_devices`, the default). Statistics (OLS) update only while
    the model trains: the Trainer also calls the function in evaluation.

    Args:
        method: A registered loss name (`hf_labelsmooth.list_losses()`).
        num_labels: The model's number of outputs K (checked against its config).
        label_names: Class names in output order; default the model config's `id2label`.
        **options: The other `hf_labelsmooth.options.RelationOptions` fields: `alpha`, `update_every` (optimizer
            steps), `top_n`, `prior` (a saved matrix, for ``relation_prior``), `relation_lr`,
            `relation_weight_decay`.
    """

    def __init__(self, method: str, num_labels: int, label_names: Sequence[str] | None = None,
                 **options: Any) -> None:
        unknown = sorted(set(options) - set(RelationOptions.__dataclass_fields__) - {"method"})
        if unknown:
            raise TypeError(f"Expected options among {sorted(set(RelationOptions.__dataclass_fields__) - {'method'})} "
                            f"but got {unknown}.")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"Expected `num_labels` to be an int >= 2 but got {num_labels!r}.")
        self.options = RelationOptions(method=method, **options)
        self.options.check()
        self.num_labels = num_labels
        self.label_names = None if label_names is None else [str(n) for n in label_names]
        self.callback = LossFunctionCallback(self.options, num_labels, self.label_names)

    @property
    def loss(self) -> RelationLoss:
        """The loss (built when the Trainer is constructed, from the model's config)."""
        return self.callback.relation_loss

    def __call__(self, outputs: Any, labels: Tensor | None, num_items_in_batch: Tensor | int | None = None) -> Tensor:
        """Loss of a batch: `sum / num_items_in_batch` (the whole accumulated, all-process batch), else the mean."""
        if labels is None:
            raise ValueError("Expected a 'labels' entry in the batch but got none. Name the dataset's label column "
                             "'labels' (or 'label', which the default data collators rename).")
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        training = self.callback.model_is_training()
        per_sample = self.callback.per_sample(logits, labels, training)
        if num_items_in_batch is None:
            if training:
                raise ValueError("Expected the Trainer to pass `num_items_in_batch` in training but got None: without "
                                 "it gradient accumulation would not equal one large batch. Pass tensor labels.")
            return per_sample.mean()
        count = num_items_in_batch
        if labels.is_floating_point() and labels.shape == logits.shape:  # soft targets: the Trainer counts K per row
            count = count / logits.shape[-1]
        return per_sample.sum() / (count.to(per_sample.device) if isinstance(count, torch.Tensor) else count)

    def save_relations(self, directory: str | None = None) -> None:
        """Write ``relation_matrix/`` into `directory` (default the run's `output_dir`), e.g. beside a model that
        `Trainer.save_model(directory)` wrote elsewhere (it calls no callback)."""
        self.callback.save_relations(directory)


def compute_loss_func(method: str, num_labels: int, **options: Any) -> RelationLossFunction:
    """A relation loss for the stock Trainer: ``Trainer(..., compute_loss_func=f, callbacks=[f.callback])``.

    See `RelationLossFunction` for the arguments.
    """
    return RelationLossFunction(method, num_labels, **options)
