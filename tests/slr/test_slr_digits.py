"""A real small SLR run: scikit-learn digits with 30% symmetric label noise, a linear model, 5 folds.

Reproduce / report the numbers (more rounds with ``--rounds``)::

    OMP_NUM_THREADS=1 python -m tests.slr.test_slr_digits --rounds 3
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from datasets import Dataset
from torch import nn

from hf_labelsmooth.slr import StochasticLabelRefinery, TimmSLRAdapter
from hf_labelsmooth.slr.checkpoint import load_round

NOISE, K = 0.3, 10


def noisy_digits(seed: int = 0, rows: np.ndarray | None = None) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(dataset with noisy `label`, true labels, indices of the flipped samples): each flipped sample gets a
    uniformly drawn wrong class (symmetric noise). `rows` restricts to a subset of the 1797 digits."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x, y) if rows is None else (x[rows], y[rows])
    rng = np.random.default_rng(seed)
    noisy = np.flatnonzero(rng.random(len(y)) < NOISE)
    given = y.copy()
    given[noisy] = (y[noisy] + rng.integers(1, K, len(noisy))) % K
    ds = Dataset.from_dict({"pixel_values": (x / 16.0).astype(np.float32).tolist(), "label": given.tolist()})
    return ds, y, noisy


def linear_adapter(epochs: int, hidden: int = 0) -> TimmSLRAdapter:
    """Multinomial logistic regression on the 64 pixels (or a one-hidden-layer MLP), trained by the timm loop."""
    def model_fn() -> nn.Module:
        return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, K)) if hidden else nn.Linear(64, K)

    return TimmSLRAdapter(num_classes=K, model_fn=model_fn, epochs=epochs, lr=0.01, weight_decay=0.01)


def refine_digits(output_dir: str, rounds: int = 3, epochs: int = 10, seed: int = 0) -> list[dict[str, float]]:
    """Run the refinery and return, per round (0 = given labels), statistics over the noisy samples."""
    torch.set_num_threads(1)
    ds, y, noisy = noisy_digits(seed)
    given = np.asarray(ds["label"])
    adapter = linear_adapter(epochs)
    StochasticLabelRefinery(adapter.train, adapter.predict, k=5, n=3, rounds=rounds, seed=seed,
                            output_dir=output_dir).run(ds)
    clean = np.setdiff1d(np.arange(len(y)), noisy)
    rows = []
    for r in range(rounds + 1):
        labels = load_round(output_dir, r, "soft_label")
        others = labels[noisy].sum(1) - labels[noisy, y[noisy]] - labels[noisy, given[noisy]]
        rows.append({"round": r, "true_mass_noisy": float(labels[noisy, y[noisy]].mean()),
                     "given_mass_noisy": float(labels[noisy, given[noisy]].mean()),
                     "other_mass_noisy": float(others.mean() / (K - 2)),
                     "argmax_true_noisy": float((labels[noisy].argmax(1) == y[noisy]).mean()),
                     "argmax_true_clean": float((labels[clean].argmax(1) == y[clean]).mean()),
                     "num_noisy": len(noisy)})
    return rows


def test_refined_labels_move_mass_to_true_class(tmp_path) -> None:
    rows = refine_digits(str(tmp_path), rounds=3)
    for row in rows:
        print(row)
    before, after = rows[0], rows[-1]
    assert before["true_mass_noisy"] == 0.0 and before["given_mass_noisy"] == 1.0
    assert after["true_mass_noisy"] > before["true_mass_noisy"]
    masses = [row["true_mass_noisy"] for row in rows]
    assert masses == sorted(masses)  # every round moves more mass to the true class
    assert after["true_mass_noisy"] > 5 * after["other_mass_noisy"]  # the true class, not uniform smoothing
    assert after["argmax_true_clean"] > 0.99  # clean samples keep their class


def final_model_accuracy(rounds: int, epochs: int, seed: int = 0, hidden: int = 0) -> dict[str, float]:
    """Clean held-out accuracy (20% of digits) of a model trained on the noisy 80%: hard noisy labels vs the
    final SLR model trained on the refined labels."""
    from sklearn.model_selection import train_test_split

    from hf_labelsmooth.slr import with_labels

    train_rows, test_rows = train_test_split(np.arange(1797), test_size=0.2, random_state=seed)
    train, _, _ = noisy_digits(seed, train_rows)
    test, y_test, _ = noisy_digits(seed, test_rows)
    test = test.remove_columns("label")  # the clean y_test is the reference
    adapter = linear_adapter(epochs, hidden)
    hard = with_labels(train, np.eye(K, dtype=np.float32)[np.asarray(train["label"])], "soft_label")
    baseline = adapter.train(hard, seed)
    _, final = StochasticLabelRefinery(adapter.train, adapter.predict, k=5, n=3, rounds=rounds, seed=seed).fit(train)
    return {f"test_acc_{name}": float((adapter.predict(m, test).argmax(1) == y_test).mean())
            for name, m in (("noisy_hard_labels", baseline), ("slr_final_model", final))}


if __name__ == "__main__":
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--final_model", action="store_true", help="Also compare held-out accuracy (80/20 split).")
    parser.add_argument("--hidden", type=int, default=0, help="--final_model with an MLP of this width (0: linear).")
    cli = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in refine_digits(tmp, cli.rounds, cli.epochs, cli.seed):
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if cli.final_model:
        print(final_model_accuracy(cli.rounds, cli.epochs, cli.seed, cli.hidden))
