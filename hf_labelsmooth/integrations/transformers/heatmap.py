"""`RelationHeatmapCallback`: the learned matrix as an image in the Trainer's loggers that take images.

Scalars (mean row entropy, off-diagonal mass) go through `Trainer.log` like every metric; an image cannot, so this
callback hands the heatmap to the image-capable `report_to` integrations the Trainer set up: TensorBoard
(``TensorBoardCallback.tb_writer.add_image``) and Weights & Biases (``WandbCallback._wandb.log`` with a
``wandb.Image``). Nothing is rendered when none of them is active, for a method that learns no matrix, or for a sparse
loss above the dense size. Rendering needs matplotlib (the ``plot`` extra).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ...losses.base import RelationLoss
from ...relations import needs_topk_artifact, relations_from_loss
from ...relations.plot import heatmap_array

logger = logging.getLogger(__name__)
TAG = "relation_matrix"


def image_writers(callbacks: Sequence[TrainerCallback]) -> list[tuple[str, Any]]:
    """The active image-capable loggers among the Trainer's callbacks, as (kind, handle)."""
    writers = []
    for callback in callbacks:
        kind = type(callback).__name__
        if kind == "TensorBoardCallback" and getattr(callback, "tb_writer", None) is not None:
            writers.append(("tensorboard", getattr(callback, "tb_writer")))
        elif kind == "WandbCallback" and getattr(callback, "_initialized", False):
            writers.append(("wandb", getattr(callback, "_wandb")))
    return writers


class RelationHeatmapCallback(TrainerCallback):
    """Log the matrix's heatmap (tag ``relation_matrix``) every `every` epochs, on the main process.

    Args:
        loss: The trainer's relation loss.
        label_names: Class names in output order.
        callbacks: The trainer's callback list (searched for the image-capable loggers when logging).
        every: Period in epochs; 0 never logs.
    """

    def __init__(self, loss: RelationLoss, label_names: Sequence[str], callbacks: list[TrainerCallback],
                 every: int = 1) -> None:
        self.loss, self.label_names, self.callbacks, self.every = loss, list(label_names), callbacks, every

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        epoch = round(state.epoch or 0)  # the epoch just completed (a resumed run keeps counting)
        if not self.every or epoch % self.every or not state.is_world_process_zero:
            return
        if not self.loss.spec.learns_relations or needs_topk_artifact(self.loss):
            return
        writers = image_writers(self.callbacks)
        image = heatmap_array(relations_from_loss(self.loss, self.label_names)) if writers else None
        if image is None:
            return
        for kind, handle in writers:
            if kind == "tensorboard":
                handle.add_image(TAG, image, state.global_step, dataformats="HWC")
                handle.flush()
            else:
                handle.log({TAG: handle.Image(image), "train/global_step": state.global_step})
