"""The Trainer step of every loss syncs nothing on the accelerator path (issue 26), and a deferred check raises at
the next logging step, before the checkpoint of that step is written."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import hf_labelsmooth
from hf_labelsmooth import LabelSmoothingTrainer
from hf_labelsmooth.losses.functional import host_shortcuts
from tests.support.syncs import SyncCounter
from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model

METHODS = [n for n in hf_labelsmooth.list_losses() if not hf_labelsmooth.get_loss_class(n).spec.requires_matrix]


def _trainer(out: Path, method: str, **overrides) -> LabelSmoothingTrainer:
    args = digits_args(str(out), method, batch=16, max_steps=3, **overrides)
    return LabelSmoothingTrainer(model=tiny_model(), args=args, train_dataset=DigitsDataset(64))


@pytest.mark.parametrize("top_n", [None, 3])
@pytest.mark.parametrize("method", METHODS)
def test_the_trainer_step_never_syncs(tmp_path: Path, method: str, top_n: int | None) -> None:
    if top_n is not None and not hf_labelsmooth.get_loss_class(method).spec.supports_top_n:
        pytest.skip("dense only")
    trainer = _trainer(tmp_path, method, relation_top_n=top_n)
    counts: list[dict[str, int]] = []
    step = trainer.training_step

    def counted(*args, **kwargs):
        with SyncCounter() as counter:
            out = step(*args, **kwargs)
        counts.append(dict(counter.counts))
        return out

    trainer.training_step = counted  # type: ignore[method-assign]
    with host_shortcuts(False):
        trainer.train()
    assert counts == [{}] * 3


class _PoisonMatrix(TrainerCallback):
    """NaN relation rows after step 1 (a defect the next batch reads): only the deferred check can see it."""

    def __init__(self, loss: hf_labelsmooth.RelationLoss) -> None:
        self.loss = loss

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            with torch.no_grad():
                self.loss.matrix.fill_(float("nan"))


def test_a_deferred_defect_raises_at_the_logging_step_before_the_checkpoint(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "ols", logging_steps=2, save_strategy="steps", save_steps=2)
    trainer.add_callback(_PoisonMatrix(trainer.relation_loss))
    with host_shortcuts(False), pytest.raises(ValueError, match=r"defect in batch 1 .*found at the logging step 2"):
        trainer.train()
    assert not (tmp_path / "checkpoint-2").exists()
