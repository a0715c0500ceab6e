"""Main demo: a small timm CNN on scikit-learn's digits, trained with each loss; prints a results table.

Run: ``python train_scripts/run_digits_demo.py --output-dir outputs/demo`` (about 2 minutes on 2 CPU cores).
Writes, per method, the learned class-relation matrix (safetensors + config + model card + heatmap PNG)
and ``results.md`` with accuracy, NLL and ECE on the held-out split.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hf_labelsmooth.exits import run_main
from hf_labelsmooth import create_loss, list_losses
from hf_labelsmooth.metrics.functional import expected_calibration_error
from hf_labelsmooth.optim import default_relation_lr, module_param_groups, relation_param_groups

METHODS = ("ce", "ls", *list_losses(learns_relations=True))  # the baselines, then every method that learns R
LABELS = [str(d) for d in range(10)]


@dataclass
class Split:
    images: Tensor
    labels: Tensor


def load_digits_splits(seed: int = 0, size: int = 16, test_fraction: float = 0.3) -> tuple[Split, Split]:
    """scikit-learn's 8×8 digits, upscaled to `size`×`size`, standardised, stratified train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    labels = torch.tensor(data.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=test_fraction, random_state=seed,
                                           stratify=labels.numpy())
    return Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])


def add_label_noise(labels: Tensor, rate: float, num_classes: int, seed: int) -> Tensor:
    """Symmetric noise: a `rate` fraction of labels replaced by a different class chosen uniformly."""
    g = torch.Generator().manual_seed(seed)
    noisy = labels.clone()
    flip = torch.rand(len(labels), generator=g) < rate
    offset = torch.randint(1, num_classes, (len(labels),), generator=g)
    noisy[flip] = (labels[flip] + offset[flip]) % num_classes
    return noisy


def build_model(name: str, seed: int):
    """A timm model for 1-channel 16×16 digits (default: timm's tiny `test_resnet`, 0.37M parameters)."""
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, num_classes=10, in_chans=1)


def train(method: str, train: Split, args: argparse.Namespace):
    """Train one model with `method`; returns (model, loss)."""
    model = build_model(args.model, args.seed)
    loss_fn = create_loss(method, num_classes=10)
    groups = module_param_groups(model, args.weight_decay)
    steps = args.epochs * -(-len(train.labels) // args.batch_size)
    relation_lr = default_relation_lr(torch.optim.AdamW, args.lr, total_steps=steps) if args.relation_lr is None \
        else args.relation_lr
    groups += relation_param_groups(loss_fn, lr=relation_lr, network_weight_decay=args.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        model.train(), loss_fn.train()
        for idx in torch.randperm(len(train.labels), generator=g).split(args.batch_size):
            loss = loss_fn(model(train.images[idx]), train.labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss_fn.end_epoch()
    return model, loss_fn


@torch.no_grad()
def evaluate(model, split: Split) -> dict[str, float]:
    model.eval()
    logits = torch.cat([model(x) for x in split.images.split(256)])
    probs = logits.softmax(-1)
    return {
        "accuracy": float((probs.argmax(-1) == split.labels).float().mean()),
        "nll": float(F.cross_entropy(logits, split.labels)),
        "ece": expected_calibration_error(probs, split.labels),
    }


def save_matrix(method: str, loss_fn, args: argparse.Namespace) -> str:
    from hf_labelsmooth.relations import save_relations
    from hf_labelsmooth.relations.provenance import SCRATCH_MARK

    path = os.path.join(args.output_dir, method)  # source: no Hub id (a from-scratch timm model has no base model)
    save_relations(loss_fn, LABELS, path, source_model=f"{SCRATCH_MARK} (timm architecture {args.model})",
                   dataset="sklearn digits (upscaled 16x16)", epochs=args.epochs)
    return path


def format_table(rows: list[dict]) -> str:
    lines = ["| method | accuracy | NLL | ECE | train s | matrix |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['accuracy']:.4f} | {r['nll']:.4f} | {r['ece']:.4f} | "
                     f"{r['seconds']:.0f} | {r['matrix']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default="outputs/demo")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--model", default="test_resnet", help="any timm model name (built from its config)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--relation-lr", type=float, default=None,
                   help="lr of the lspp/lls matrix (default: the library's for AdamW, max(--lr, 3 / total steps))")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-noise", type=float, default=0.0, help="symmetric noise rate on training labels")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    train_split, test_split = load_digits_splits(args.seed)
    if args.label_noise:
        train_split.labels = add_label_noise(train_split.labels, args.label_noise, 10, args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    rows = []
    for method in args.methods:
        start = time.perf_counter()
        model, loss_fn = train(method, train_split, args)
        row = {"method": method, **evaluate(model, test_split), "seconds": time.perf_counter() - start}
        row["matrix"] = save_matrix(method, loss_fn, args) if loss_fn.spec.learns_relations else "–"
        rows.append(row)
        print(f"{method}: accuracy {row['accuracy']:.4f}  nll {row['nll']:.4f}  ece {row['ece']:.4f}", flush=True)
    table = format_table(rows)
    print(table)
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    return rows


if __name__ == "__main__":
    run_main(main, script=__file__)
