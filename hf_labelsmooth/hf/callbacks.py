"""`RelationLossCallback`: the Trainer-loop side of a relation loss (gradient sync, zeroing, OLS periods)."""
from __future__ import annotations

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..losses.base import RelationLoss
from .loss_state import average_gradients, zero_gradients


class RelationLossCallback(TrainerCallback):
    """Drive a `RelationLoss` from `Trainer` events.

    - before each optimizer step: average the loss parameters' gradients across processes (they live outside
      the DDP-wrapped model, so DDP does not reduce them);
    - after each optimizer step: drop those gradients, and for OLS with `update_every` (in optimizer steps, so
      gradient accumulation is accounted for) swap the matrix every N steps;
    - at each epoch end: `loss.end_epoch()` (OLS swaps), unless OLS is on a step period.

    Args:
        loss: The loss module used by the trainer.
        ols_update_every: Swap period of OLS in optimizer steps; ``None`` swaps at each epoch end.
    """

    def __init__(self, loss: RelationLoss, ols_update_every: int | None = None) -> None:
        self.loss = loss
        self.ols_update_every = ols_update_every

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        zero_gradients(self.loss)

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        average_gradients(self.loss)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        zero_gradients(self.loss)
        if self.ols_update_every is not None and state.global_step % self.ols_update_every == 0:
            self.loss.swap()

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.ols_update_every is None:
            self.loss.end_epoch()
