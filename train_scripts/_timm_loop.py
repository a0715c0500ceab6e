"""Building blocks of ``train_scripts/train_timm.py``: seeding, ImageFolder loaders, the epoch loops, matrix export.

Determinism: every epoch starts by reseeding (`seed_epoch`) and the training sampler is a ``DistributedSampler``
even in a single process, so one process with batch ``N·b`` sees exactly the global batches of ``N`` processes
with batch ``b``, and a run resumed from an epoch checkpoint continues exactly as the uninterrupted run.
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from timm.data import create_dataset, create_transform
from timm.utils import AverageMeter, dispatch_clip_grad, random_seed

from hf_labelsmooth.losses import RelationLoss
from hf_labelsmooth.losses.states import process_group
from hf_labelsmooth.integrations.timm import RelationClassificationTask

_logger = logging.getLogger("train")


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed torch, numpy and random for `epoch` (loader workers, Mixup, dropout), distinct per rank."""
    random_seed(seed + 100_003 * (epoch + 1), rank)


def dataset_class_names(dataset: Dataset) -> list[str]:
    """Class names of a timm ImageFolder dataset, in label-index order."""
    class_to_idx = getattr(getattr(dataset, "reader", None), "class_to_idx", None)
    if not class_to_idx and getattr(dataset, "classes", None):  # torchvision datasets (--dataset torch/...)
        return [str(name) for name in dataset.classes]
    if not class_to_idx:
        raise ValueError(f"Expected an ImageFolder-style dataset with reader.class_to_idx but got "
                         f"{type(dataset).__name__}. Use --dataset '' (ImageFolder) or pass --class-map.")
    return [name for name, _ in sorted(class_to_idx.items(), key=lambda item: item[1])]


def build_datasets(args: Any) -> tuple[Dataset, Dataset]:
    """Train and validation datasets (timm ``create_dataset``; ImageFolder for ``--dataset ''``), no transforms yet."""
    common = dict(root=args.data_dir, class_map=args.class_map or None, batch_size=args.batch_size)
    train = create_dataset(args.dataset, split=args.train_split, is_training=True, **common)
    val = create_dataset(args.dataset, split=args.val_split, is_training=False, **common)
    return train, val


def set_transforms(train: Dataset, val: Dataset, args: Any, data_config: dict[str, Any]) -> None:
    """timm's training (augmenting unless --no-aug) and evaluation transforms."""
    size, interp = data_config["input_size"], data_config["interpolation"]
    train.transform = create_transform(
        size, is_training=True, no_aug=args.no_aug, scale=args.scale, ratio=args.ratio, hflip=args.hflip,
        vflip=args.vflip, color_jitter=args.color_jitter, auto_augment=args.aa, re_prob=args.reprob,
        re_mode=args.remode, re_count=args.recount, mean=data_config["mean"], std=data_config["std"],
        interpolation=args.train_interpolation if not args.no_aug else interp)
    val.transform = create_transform(size, is_training=False, interpolation=interp, mean=data_config["mean"],
                                     std=data_config["std"], crop_pct=data_config["crop_pct"])


def build_loader(dataset: Dataset, batch_size: int, args: Any, training: bool) -> DataLoader:
    """A loader over this rank's shard (``DistributedSampler`` in every case, shuffled by `args.seed` + epoch)."""
    sampler = DistributedSampler(dataset, num_replicas=args.world_size, rank=args.rank, shuffle=training,
                                 seed=args.seed, drop_last=training)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=args.workers,
                      drop_last=training, persistent_workers=False)


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, task: RelationClassificationTask, args: Any,
          loss_scaler: Any) -> None:
    optimizer.zero_grad(set_to_none=True)
    if loss_scaler is not None:
        loss_scaler(loss, optimizer, clip_grad=args.clip_grad, clip_mode=args.clip_mode,
                    parameters=task.get_clip_parameters())
        return
    loss.backward()
    if args.clip_grad is not None:
        dispatch_clip_grad(task.get_clip_parameters(), value=args.clip_grad, mode=args.clip_mode)
    optimizer.step()


def train_one_epoch(epoch: int, task: RelationClassificationTask, loader: DataLoader,
                    optimizer: torch.optim.Optimizer, args: Any, device: torch.device, lr_scheduler: Any = None,
                    amp_autocast: Callable = nullcontext, loss_scaler: Any = None, mixup_fn: Callable | None = None,
                    num_updates: int = 0) -> tuple[dict[str, float], int]:
    """One epoch of training (the loss's epoch-end hook is the caller's: `task.end_epoch()`).

    Returns:
        ``({"loss": mean train loss on this rank, "epoch_time": seconds}, num_updates)``.
    """
    task.train()
    losses, start, last = AverageMeter(), time.perf_counter(), len(loader) - 1
    for batch_idx, (input, target) in enumerate(loader):
        input, target = input.to(device), target.to(device)
        if mixup_fn is not None:
            input, target = mixup_fn(input, target)
        with amp_autocast():
            loss = task(input, target)["loss"]
        _step(loss, optimizer, task, args, loss_scaler)
        num_updates += 1
        task.update_ema(step=num_updates)
        losses.update(loss.item(), input.size(0))
        if lr_scheduler is not None:
            lr_scheduler.step_update(num_updates=num_updates, metric=losses.avg)
        if args.rank == 0 and (batch_idx % args.log_interval == 0 or batch_idx == last):
            lr = optimizer.param_groups[0]["lr"]
            _logger.info(f"Train: {epoch} [{batch_idx:>4d}/{len(loader)}] loss {losses.val:.4f} "
                         f"({losses.avg:.4f}) lr {lr:.3e}")
    return {"loss": losses.avg, "epoch_time": time.perf_counter() - start}, num_updates


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, device: torch.device, amp_autocast: Callable = nullcontext,
             log_suffix: str = "", verbose: bool = True) -> dict[str, float]:
    """Cross-entropy, top-1 and top-5 (%) over the validation set, summed across processes."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top-1, top-5, count
    for input, target in loader:
        input, target = input.to(device), target.to(device)
        with amp_autocast():
            output = model(input)
        output = output.float()
        topk = output.topk(min(5, output.shape[-1]), dim=-1).indices
        hits = topk.eq(target[:, None])
        totals += torch.stack([F.cross_entropy(output, target, reduction="sum").double(),
                               hits[:, 0].sum().double(), hits.any(-1).sum().double(),
                               torch.tensor(float(len(target)), dtype=torch.float64, device=device)])
    if process_group() is not None:
        dist.all_reduce(totals)
    count = max(float(totals[3]), 1.0)
    metrics = {"loss": float(totals[0]) / count, "top1": 100 * float(totals[1]) / count,
               "top5": 100 * float(totals[2]) / count}
    if verbose:
        _logger.info(f"Test{log_suffix}: loss {metrics['loss']:.4f} top1 {metrics['top1']:.2f} "
                     f"top5 {metrics['top5']:.2f}")
    return metrics


def save_relation_matrix(loss: nn.Module, label_names: Sequence[str], directory: str | Path,
                         **metadata: Any) -> Path | None:
    """Write what the loss learned with the dataset's class names (`hf_labelsmooth.relations.save_relations`).

    Args:
        loss: The criterion; nothing is written for timm's own losses or methods that learn no relations.
        label_names: The dataset's class names, in label-index order.
        directory: Output directory (e.g. ``<output>/relation_matrix`` next to the checkpoints).
        **metadata: ``source_model``, ``dataset``, ``epochs`` and further fields for the config / card.

    Returns:
        The directory written, or None.
    """
    if not isinstance(loss, RelationLoss) or not loss.learns_relations:
        return None
    from hf_labelsmooth.relations import save_relations

    path = save_relations(loss, label_names, directory, **metadata)
    _logger.info(f"Wrote the {loss.name} relations ({loss.num_classes} classes) to {path}")
    return path
