"""The Trainer rows of `step_overhead.py`: `LabelSmoothingTrainer` + a method vs the stock `transformers.Trainer`
with ``label_smoothing_factor=0.1``, on a small BERT classifier built from a config (no download).

A step is what the Trainer times between ``on_step_begin`` and ``on_step_end`` (forward, loss, backward, the
optimizer steps: the model's and, for lspp/lls, the matrix's own `RelationOptimizer`), in thread CPU time
(`time.thread_time`: waiting for a busy CPU is not counted). Each round runs the stock Trainer and then one
method (shuffled order), `steps` steps each; a ratio is the median over rounds of (median method step / median
stock step of the same round).
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import __version__ as transformers_version
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments

from _sections import write_section

HEADER = "## Trainer step (transformers)"
SEQ, VOCAB = 32, 2000


class _Tokens(Dataset):
    """Random token ids [n, SEQ] with labels in [0, k)."""

    def __init__(self, n: int, k: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids, self.labels = torch.randint(0, VOCAB, (n, SEQ), generator=g), torch.randint(0, k, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class _StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        self._start = time.thread_time()

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.thread_time() - self._start)


def _model(k: int) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
        max_position_embeddings=SEQ, num_labels=k))


def step_time(method: str | None, k: int, steps: int, batch: int) -> float:
    """Median step seconds (after one warm-up step) of `steps` steps; None = the stock Trainer."""
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        common = dict(output_dir=out, per_device_train_batch_size=batch, max_steps=steps + 1, save_strategy="no",
                      report_to="none", use_cpu=True, disable_tqdm=True, log_level="error", logging_steps=10 ** 6,
                      dataloader_num_workers=0, learning_rate=1e-4)
        if method is None:
            trainer: Trainer = Trainer(model=_model(k), args=TrainingArguments(label_smoothing_factor=0.1, **common),
                                       train_dataset=_Tokens(batch * (steps + 1), k), callbacks=[timer])
        else:
            args = LabelSmoothingTrainingArguments(label_smoothing_method=method, **common)
            trainer = LabelSmoothingTrainer(model=_model(k), args=args, train_dataset=_Tokens(batch * (steps + 1), k),
                                            callbacks=[timer])
        trainer.train()
    return statistics.median(timer.times[1:])


def trainer_rows(methods: tuple[str, ...], k: int, rounds: int, steps: int, batch: int) -> dict[str, Any]:
    """Median per-round ratios for each method, and the stock step's median ms."""
    ratios: dict[str, list[float]] = {m: [] for m in methods}
    stock: list[float] = []
    for _ in range(rounds):
        order = list(methods)
        random.shuffle(order)
        for method in order:
            ref = step_time(None, k, steps, batch)
            ratios[method].append(step_time(method, k, steps, batch) / ref)
            stock.append(ref)
    return {"ratios": {m: statistics.median(r) for m, r in ratios.items()},
            "iqr": {m: statistics.quantiles(r, n=4)[::2] if len(r) > 1 else [r[0], r[0]] for m, r in ratios.items()},
            "stock_ms": statistics.median(stock) * 1e3}


def trainer_markdown(result: dict[str, Any], k: int, rounds: int, steps: int, batch: int, where: str) -> str:
    lines = [HEADER, "", f"BERT (2 layers, hidden 128, sequence {SEQ}) built from a config, K = {k}, batch {batch}, "
             f"{rounds} rounds × {steps} timed steps, {where}; median stock-Trainer step (`label_smoothing_factor="
             f"0.1`): {result['stock_ms']:.1f} ms (thread CPU time). Target: ratio <= 1.02.", "",
             "| method | step ratio vs stock Trainer | IQR of per-round ratios | target met |", "|---|---|---|---|"]
    for method, ratio in result["ratios"].items():
        low, high = result["iqr"][method]
        lines.append(f"| {method} | {ratio:.3f} | {low:.3f}–{high:.3f} | {'yes' if ratio <= 1.02 else 'no'} |")
    return "\n".join(lines) + "\n"



def run_trainer(out: Path, methods: tuple[str, ...], rounds: int = 5, steps: int = 8, k: int = 100,
                batch: int = 16) -> str:
    """Time the Trainer rows and write their section into `out` (the other sections kept)."""
    where = f"CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}, transformers {transformers_version}"
    section = trainer_markdown(trainer_rows(methods, k, rounds, steps, batch), k, rounds, steps, batch, where)
    write_section(out, HEADER, section)
    return section
