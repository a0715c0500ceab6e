"""Stochastic Label Refinery (docs/methods.md "soft_kl"): k-fold EM refinement of soft labels in a Dataset column."""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Callable, Sequence, cast

import numpy as np
from datasets import ClassLabel, Dataset

from . import checkpoint as ckpt

logger = logging.getLogger(__name__)
TrainFn = Callable[[Dataset, int], Any]
PredictFn = Callable[[Any, Dataset], Any]
View = Callable[[Dataset], Dataset]
TASKS = ("classification", "regression")


def m_step(labels: np.ndarray, predictions: np.ndarray, n: float) -> np.ndarray:
    """M step, Eq. 4: L(x, t+1) = (n·L(x, t) + P(x, t)) / (n + 1), computed in float64, returned as float32."""
    if n < 0:
        raise ValueError(f"Expected n >= 0 but got {n}.")
    labels64, preds64 = np.asarray(labels, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    if labels64.shape != preds64.shape:
        raise ValueError(f"Expected predictions of shape {labels64.shape} but got {preds64.shape}.")
    return ((n * labels64 + preds64) / (n + 1.0)).astype(np.float32)


def make_folds(num_samples: int, k: int, seed: int) -> list[np.ndarray]:
    """Shuffle indices 0..N-1 with `seed` and split them into `k` disjoint folds of near-equal size."""
    if not isinstance(k, int) or k < 2 or k > num_samples:
        raise ValueError(f"Expected k to be an integer in [2, {num_samples}] (the number of samples) but got {k!r}.")
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(fold) for fold in np.array_split(order, k)]


def derive_seed(seed: int, *keys: int) -> int:
    """An independent 31-bit seed for (seed, round, fold, member, ...), stable across runs and resumes."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] >> 1)


def initial_labels(dataset: Dataset, label_column: str, task: str, num_classes: int | None) -> np.ndarray:
    """L(x, 0): one-hot rows [N, K] of the class ids, or the float values [N] (or [N, D]) for regression."""
    if label_column not in dataset.column_names:
        raise ValueError(f"Expected a label column {label_column!r} in {dataset.column_names}; set label_column.")
    values = ckpt.column_array(dataset, label_column, dtype=None)
    if task == "regression":
        return values.astype(np.float32)
    feature = dataset.features[label_column]
    k = num_classes or (feature.num_classes if isinstance(feature, ClassLabel) else int(values.max()) + 1)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= k:
        raise ValueError(f"Expected integer class ids in [0, {k}) in {label_column!r} but got {values[:5]}... "
                         "(pass num_classes, or task='regression' for values).")
    return np.eye(k, dtype=np.float32)[values]


def with_labels(dataset: Dataset, labels: np.ndarray, column: str) -> Dataset:
    """`dataset` with `column` set to the given labels (replacing any previous column of that name)."""
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    feature = ckpt.labels_dataset(labels[:1], column).features[column]
    return dataset.add_column(column, np.asarray(labels, dtype=np.float32).tolist(), feature=feature)


class StochasticLabelRefinery:
    """Round by round: k folds, a model per fold trained on the other folds against the current labels,
    out-of-fold predictions P, then L ← (n·L + P)/(n+1). Labels are checkpointed after every round.

    Args:
        train_fn: ``train_fn(train_dataset, seed) -> model``; the dataset carries the current labels in
            `soft_label_column` (train with ``create_loss("soft_kl")``, or `soft_value_loss` for regression).
            A sequence of train functions gives SLR-e with different models (paper: three architectures).
        predict_fn: ``predict_fn(model, dataset) -> array`` of probabilities [n, K] (not logits), or values
            [n] / [n, D] for regression. A sequence pairs with a sequence of train functions.
        k: Number of folds (paper default 5). n: M-step weight of the old labels (paper default 3).
        rounds: Number of EM rounds (paper: 2-6). seed: Seeds folds and training (per round, fold, member).
        output_dir: Where rounds are checkpointed; a later run with the same settings resumes from the last
            finished round. None keeps everything in memory.
        task: ``"classification"`` (labels are distributions) or ``"regression"`` (values; ordinal grades too).
        num_classes: K; inferred from a `ClassLabel` feature or the largest id when None.
        label_column: Column of the given labels (class ids or values); used when `soft_label_column` is absent.
        soft_label_column: Column holding L; an existing column is taken as L(x, 0).
        ensemble: SLR-e: models trained per fold and train function (different seeds), predictions averaged.
        tta: SLR-a: extra views ``view(dataset) -> dataset`` (e.g. ``lambda d: d.with_transform(flip)``); the
            held-out predictions are averaged over the original dataset and every view.
        resume: Resume from `output_dir` when it holds a checkpoint (else start over and overwrite it).
    """

    def __init__(self, train_fn: TrainFn | Sequence[TrainFn], predict_fn: PredictFn | Sequence[PredictFn],
                 k: int = 5, n: float = 3, rounds: int = 3, seed: int = 0, *,
                 output_dir: str | os.PathLike | None = None,
                 task: str = "classification", num_classes: int | None = None, label_column: str = "label",
                 soft_label_column: str = "soft_label", ensemble: int = 1, tta: Sequence[View] = (),
                 resume: bool = True) -> None:
        # casts: mypy cannot rule out a callable list subclass, so the isinstance test does not narrow the else branch
        self.train_fns: list[TrainFn] = (list(train_fn) if isinstance(train_fn, (list, tuple))
                                         else [cast(TrainFn, train_fn)])
        self.predict_fns: list[PredictFn] = (list(predict_fn) if isinstance(predict_fn, (list, tuple))
                                             else [cast(PredictFn, predict_fn)])
        if len(self.predict_fns) == 1:
            self.predict_fns *= len(self.train_fns)
        if len(self.predict_fns) != len(self.train_fns):
            raise ValueError(f"Expected one predict_fn or {len(self.train_fns)} but got {len(self.predict_fns)}.")
        if task not in TASKS or rounds < 0 or ensemble < 1:
            raise ValueError(f"Expected task in {TASKS}, rounds >= 0, ensemble >= 1 but got {task!r}, {rounds}, "
                             f"{ensemble}.")
        self.k, self.n, self.rounds, self.seed, self.task = k, n, rounds, seed, task
        self.output_dir, self.resume, self.ensemble, self.tta = output_dir, resume, ensemble, list(tta)
        self.num_classes, self.label_column, self.soft_label_column = num_classes, label_column, soft_label_column
        self.history: list[dict[str, float]] = []
        self._given_hash = ""

    def run(self, dataset: Dataset) -> Dataset:
        """Refine for `rounds` rounds (resuming when possible); return `dataset` with the refined label column."""
        labels, start = self._start(dataset)
        for round_idx in range(start + 1, self.rounds + 1):
            predictions = self.out_of_fold(with_labels(dataset, labels, self.soft_label_column), round_idx)
            new = m_step(labels, predictions, self.n)
            self.history.append({"round": round_idx, "mean_abs_change": float(np.abs(new - labels).mean())})
            logger.info("SLR round %d/%d: mean |ΔL| = %.4f", round_idx, self.rounds,
                        self.history[-1]["mean_abs_change"])
            labels = new
            self._save(round_idx, labels, dataset)
        return with_labels(dataset, labels, self.soft_label_column)

    def fit(self, dataset: Dataset) -> tuple[Dataset, Any]:
        """`run`, then train the final model on all data with the refined labels: (refined dataset, model)."""
        refined = self.run(dataset)
        return refined, self.train_final(refined)

    def train_final(self, refined: Dataset) -> Any:
        """Train the first train function on the whole refined dataset (seed derived from `seed`)."""
        return self.train_fns[0](refined, derive_seed(self.seed, 1_000_000))

    def out_of_fold(self, dataset: Dataset, round_idx: int) -> np.ndarray:
        """E step: P(x, t) for every sample, each predicted by models that never saw it."""
        folds = make_folds(len(dataset), self.k, derive_seed(self.seed, round_idx))
        label_shape = ckpt.column_array(dataset.select(range(1)), self.soft_label_column).shape[1:]
        predictions: np.ndarray | None = None
        for fold_idx, held_out in enumerate(folds):
            train_idx = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != fold_idx]))
            train, val = dataset.select(train_idx), dataset.select(held_out).remove_columns(self.soft_label_column)
            fold_preds = self._fold_predictions(train, val, (round_idx, fold_idx), label_shape)
            if predictions is None:
                predictions = np.zeros((len(dataset), *fold_preds.shape[1:]), dtype=np.float64)
            predictions[held_out] = fold_preds
            logger.info("SLR round %d fold %d/%d done", round_idx, fold_idx + 1, self.k)
        assert predictions is not None  # `make_folds` gives k >= 2 folds
        return predictions

    def _fold_predictions(self, train: Dataset, val: Dataset, keys: tuple[int, int],
                          label_shape: tuple[int, ...]) -> np.ndarray:
        """Average over train functions × ensemble members × views (SLR-e, SLR-a) of the held-out predictions."""
        total, count = np.zeros((len(val), *label_shape)), 0
        for fn_idx, (train_fn, predict_fn) in enumerate(zip(self.train_fns, self.predict_fns)):
            for member in range(self.ensemble):
                model = train_fn(train, derive_seed(self.seed, *keys, fn_idx, member))
                for view in [None, *self.tta]:
                    preds = predict_fn(model, val if view is None else view(val))
                    total = total + self._check(preds, (len(val), *label_shape))
                    count += 1
                del model
        return total / count

    def _check(self, predictions: Any, expected: tuple[int, ...]) -> np.ndarray:
        """Validate one predict_fn output; [n, 1] values are squeezed to [n] for scalar regression targets."""
        preds = np.asarray(predictions.detach().cpu() if hasattr(predictions, "detach") else predictions, np.float64)
        if self.task == "regression" and len(expected) == 1 and preds.shape == (*expected, 1):
            preds = preds[:, 0]
        if preds.shape != expected or not np.isfinite(preds).all():
            raise ValueError(f"Expected finite predictions of shape {expected} from predict_fn but got "
                             f"{preds.shape}. Return probabilities [n, K] (or values for regression).")
        if self.task == "classification":
            sums = preds.sum(axis=1)
            if (preds < 0).any() or np.abs(sums - 1).max() > 1e-3:
                raise ValueError(f"Expected probabilities (rows >= 0 summing to 1) from predict_fn but got row sums "
                                 f"{sums[:4]}. Apply softmax to the logits.")
            preds = preds / sums[:, None]
        return preds

    def _start(self, dataset: Dataset) -> tuple[np.ndarray, int]:
        """(labels, rounds already finished): a checkpoint when resuming, else L(x, 0) (saved as round 0)."""
        if self.soft_label_column in dataset.column_names:
            labels = ckpt.column_array(dataset, self.soft_label_column)
        else:
            labels = initial_labels(dataset, self.label_column, self.task, self.num_classes)
        self._given_hash = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.float32).tobytes()).hexdigest()[:16]
        state = ckpt.load_state(self.output_dir) if self.output_dir is not None and self.resume else None
        if state is None:
            self._save(0, labels, dataset)
            return labels, 0
        assert self.output_dir is not None  # a state is only loaded from `output_dir`
        ckpt.check_meta(state, self._meta(dataset), self.output_dir)
        done = min(int(state["rounds_done"]), self.rounds)
        logger.info("SLR resuming from %s after round %d", self.output_dir, done)
        return ckpt.load_round(self.output_dir, done, self.soft_label_column), done

    def _meta(self, dataset: Dataset) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "seed": self.seed, "task": self.task, "num_samples": len(dataset),
                "ensemble": self.ensemble, "num_views": 1 + len(self.tta), "num_models": len(self.train_fns),
                "given_labels_sha256": self._given_hash}

    def _save(self, round_idx: int, labels: np.ndarray, dataset: Dataset) -> None:
        if self.output_dir is not None:
            os.makedirs(self.output_dir, exist_ok=True)
            ckpt.save_round(self.output_dir, round_idx, labels, self.soft_label_column, self._meta(dataset))
