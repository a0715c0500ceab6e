"""Shared tail of the training scripts (train_scripts/run_*_classification.py): logging, resume, train, evaluate."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)


def setup_logging(training_args: Any) -> None:
    """Log to stdout at the level asked by `training_args` (as the HF example scripts)."""
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)


def resolve_checkpoint(training_args: Any) -> str | None:
    """`--resume_from_checkpoint`, else the last checkpoint in `output_dir` when training there again."""
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    if training_args.do_train and os.path.isdir(training_args.output_dir):
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(training_args.output_dir)
    return None


def label_maps(names: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """(label2id, id2label) for `config` from the dataset's class names."""
    return {n: i for i, n in enumerate(names)}, dict(enumerate(names))


def train_and_evaluate(trainer: Any, training_args: Any) -> dict[str, float]:
    """Train (resuming when a checkpoint is found), save the model + relation matrix, then evaluate.

    Returns:
        The evaluation metrics (empty without `do_eval`).
    """
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=resolve_checkpoint(training_args))
        trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    metrics: dict[str, float] = {}
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return metrics
