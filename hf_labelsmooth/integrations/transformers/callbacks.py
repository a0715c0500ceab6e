"""`RelationLossCallback`: the Trainer-loop side of a relation loss (gradient sync, zeroing, update periods)."""
from __future__ import annotations

from typing import Any, Callable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ...losses.base import RelationLoss
from ...optim import MatrixCheck
from ...options import UpdatePeriod
from .relation_optimizer import zero_gradients


class RelationLossCallback(TrainerCallback):
    """Drive a `RelationLoss` from `Trainer` events.

    - before each optimizer step: `optimizer_step` (the matrix's optimizer, which first averages its gradients
      across processes);
    - after each optimizer step: `scheduler_step`, drop the loss parameters' gradients, and with `update_every`
      refresh the relations every N optimizer steps (`hf_labelsmooth.options.UpdatePeriod`: OLS swaps, sparse
      slots refresh; gradient accumulation is accounted for, as under timm);
    - otherwise once per epoch: at the step that completes it, before the Trainer saves a checkpoint of that step
      (a run resumed from it then ends where an uninterrupted one would), or at the epoch end when training stops
      mid-epoch (`max_steps`);
    - at each epoch end, on the main process: warn once when a learnable matrix has not moved since training
      started (not in a warmup epoch; naming ``--relation_lr``, or alpha 0), and once when rows have collapsed
      (`MatrixCheck`).

    Args:
        loss: The loss module used by the trainer.
        update_every: Period in optimizer steps; ``None`` refreshes at each epoch end.
        optimizer_step: Steps the optimizer of the loss's parameters (after the gradients are averaged).
        scheduler_step: Steps its learning-rate schedule.
        relation_group: Returns the matrix's optimizer param group (its applied lr is judged), or None.
    """

    def __init__(self, loss: RelationLoss, update_every: int | None = None,
                 optimizer_step: Callable[[], None] | None = None,
                 scheduler_step: Callable[[], None] | None = None,
                 relation_group: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.loss = loss
        self.period = UpdatePeriod(loss, update_every)
        self.refreshed_at: int | None = None  # global step of the last epoch refresh
        self.optimizer_step, self.scheduler_step = optimizer_step, scheduler_step
        self.relation_group = relation_group
        self.still = MatrixCheck(loss, flag="--relation_lr", alpha_flag="--label_smoothing_alpha")

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        zero_gradients(self.loss)
        self.still.start()  # after a resume has restored the loss state
        self.still.follow(self.relation_group() if self.relation_group is not None else None)

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.still.observe()  # the lr this step applies
        if self.optimizer_step is not None:
            self.optimizer_step()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.scheduler_step is not None:
            self.scheduler_step()
        zero_gradients(self.loss)
        if self.period.every is not None:
            self.period.after_step(state.global_step)
        elif state.epoch is not None and float(state.epoch).is_integer():  # the last step of an epoch
            self.refresh(state)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.period.every is None and self.refreshed_at != state.global_step:
            self.refresh(state)
        if state.is_world_process_zero:
            self.still.check(state.epoch or 0.0)

    def refresh(self, state: TrainerState) -> None:
        self.period.at_epoch_end()
        self.refreshed_at = state.global_step
