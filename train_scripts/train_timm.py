#!/usr/bin/env python3
"""Train a timm model on an ImageFolder with class-relation label smoothing (OLS, LS++, LLS) or timm's own losses.

The flags follow timm's ``train.py``; added: ``--loss-type`` (alias ``--loss``) with timm's types plus ``ls``,
``ols``, ``lspp``, ``lls``, ``relation_prior``; ``--ls-alpha``, ``--relation-update-every``, ``--relation-lr``,
``--relation-weight-decay``, ``--relation-matrix``. Distributed like timm: ``torchrun --nproc_per_node N
train_scripts/train_timm.py --data-dir DIR ...`` (gloo on CPU, NCCL on CUDA); ``--batch-size`` is per process.

- Smoothing: relation losses smooth with ``--ls-alpha`` (method default when unset) and need ``--smoothing 0``,
  which is their default; timm's types keep ``--smoothing 0.1``. Mixup/CutMix apply ``--smoothing`` to the soft
  targets, so a relation loss with ``--smoothing > 0`` would smooth twice: the script refuses it.
- Learnable matrices (LS++, LLS) live in the DDP-wrapped trainable module (all-reduced with the model's grads),
  in their own optimizer group (lr ``--relation-lr``, default ``--lr``; weight decay ``--relation-weight-decay``,
  default the method's: the network's for LS++ as its authors did, 0 for LLS; ``0`` keeps both out of decay).
- OLS swaps at each epoch end (or every ``--relation-update-every`` steps), summing its statistics across processes.
- Checkpoints (timm's ``CheckpointSaver``) hold the loss state in ``task_state``; ``--resume`` restores it; every
  epoch is reseeded, so a run resumed from an epoch checkpoint ends exactly where the uninterrupted run would.
- The final matrix is written to ``<output>/relation_matrix/`` (safetensors + config.json with the dataset's class
  names + card). ``--relation-matrix PATH`` trains with such a matrix as a fixed prior (``--loss-type
  relation_prior``); its class names must equal the dataset's.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any, Callable

import torch
from timm.data import Mixup, resolve_data_config
from timm.models import create_model, safe_model_name
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.task import load_task_ema_checkpoint, resume_task_checkpoint
from timm.utils import CheckpointSaver, NativeScaler, get_outdir, init_distributed_device, random_seed
from timm.utils import setup_default_logging, update_summary

from hf_labelsmooth import get_loss_class
from hf_labelsmooth.losses.states import process_group
from hf_labelsmooth.integrations.timm import (RelationClassificationTask, add_relation_param_group,
                                              create_classification_loss, is_relation_loss_type)
from _timm_args import parse_args
from _timm_loop import (build_datasets, build_loader, dataset_class_names, save_relation_matrix, seed_epoch,
                        set_transforms, train_one_epoch, validate)

_logger = logging.getLogger("train")


def build_criterion(args: argparse.Namespace, num_classes: int, class_names: list[str],
                    mixup_active: bool) -> torch.nn.Module:
    """The loss from --loss-type (timm's types delegated to timm) and the relation flags."""
    kwargs = {}
    if args.relation_update_every is not None:  # the method's own period option (ols: update_every)
        kwargs[get_loss_class(args.loss_type).period_option] = args.relation_update_every
    if args.relation_top_n is not None:
        kwargs["top_n"] = args.relation_top_n
    if args.relation_matrix is not None:
        from hf_labelsmooth.relations import load_relations

        matrix = load_relations(args.relation_matrix)
        matrix.check_label_names(class_names)
        kwargs.update(matrix=matrix, label_names=class_names)
    relation = is_relation_loss_type(args.loss_type)
    return create_classification_loss(args.loss_type, num_classes=num_classes if relation else None,
                                      smoothing=args.smoothing, soft_targets=mixup_active, alpha=args.ls_alpha,
                                      **kwargs)


def setup_amp(args: argparse.Namespace, device: torch.device) -> tuple[Callable, NativeScaler | None]:
    """(autocast context factory, loss scaler or None) as in timm's train.py."""
    if not args.amp:
        return nullcontext, None
    dtype = torch.bfloat16 if args.amp_dtype == "bfloat16" else torch.float16
    scaler = NativeScaler(device=device.type) if device.type == "cuda" and dtype == torch.float16 else None
    return partial(torch.autocast, device_type=device.type, dtype=dtype), scaler


def build_mixup(args: argparse.Namespace, num_classes: int) -> Mixup | None:
    """timm's Mixup/CutMix (None when off); it applies --smoothing, which is 0 for relation losses."""
    if not (args.mixup > 0 or args.cutmix > 0.0 or args.cutmix_minmax is not None):
        return None
    return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                 prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                 label_smoothing=args.smoothing, num_classes=num_classes)


def build_optimizer(args: argparse.Namespace, task: RelationClassificationTask) -> torch.optim.Optimizer:
    """timm's optimizer over the model, plus a param group for learnable matrices (call before the scheduler)."""
    optimizer = create_optimizer_v2(task.get_eval_model(), **optimizer_kwargs(cfg=args))
    add_relation_param_group(optimizer, task.loss, lr=args.relation_lr, weight_decay=args.relation_weight_decay,
                             network_weight_decay=args.weight_decay)
    return optimizer


def resume(args: argparse.Namespace, task: RelationClassificationTask, optimizer: torch.optim.Optimizer,
           loss_scaler: NativeScaler | None) -> int:
    """Restore model, loss state, optimizer, scaler and EMA from --resume; return the epoch to start at."""
    if not args.resume:
        return args.start_epoch or 0
    epoch = resume_task_checkpoint(task, args.resume, optimizer=None if args.no_resume_opt else optimizer,
                                   loss_scaler=loss_scaler, log_info=args.rank == 0)
    if task.has_ema():
        load_task_ema_checkpoint(task, args.resume)
    return args.start_epoch if args.start_epoch is not None else (epoch or 0)


def init_device(args: argparse.Namespace) -> torch.device:
    """timm's ``init_distributed_device`` (torchrun env → NCCL/gloo group), or join a group the caller already set up.

    Sets ``args.distributed``, ``world_size``, ``rank``, ``local_rank`` and ``owns_process_group``.
    """
    args.owns_process_group = False
    group = process_group()
    if group is None:
        device = init_distributed_device(args)
        args.owns_process_group = args.distributed
        return device
    args.rank, args.world_size = group
    args.local_rank, args.distributed = int(os.environ.get("LOCAL_RANK", 0)), args.world_size > 1
    if args.device.startswith("cuda") and ":" not in args.device:
        args.device = f"cuda:{args.local_rank}"
    return torch.device(args.device)


def setup(args: argparse.Namespace) -> dict[str, Any]:
    """Device/distributed init, model, data, loss, task, optimizer, AMP, EMA, resume; returns a dict of parts."""
    device = init_device(args)
    if args.lr is None:
        args.lr = args.lr_base * args.batch_size * args.world_size / args.lr_base_size
    train_ds, val_ds = build_datasets(args)
    class_names = dataset_class_names(train_ds)
    random_seed(args.seed, 0)
    model = create_model(args.model, pretrained=args.pretrained, num_classes=args.num_classes or len(class_names),
                         drop_rate=args.drop, drop_path_rate=args.drop_path)
    if model.num_classes != len(class_names):
        raise ValueError(f"Expected a model with {len(class_names)} outputs (the dataset's classes) but got "
                         f"{model.num_classes}. Pass --num-classes {len(class_names)} or leave it unset.")
    data_config = resolve_data_config(vars(args), model=model, verbose=args.rank == 0)
    set_transforms(train_ds, val_ds, args, data_config)
    mixup_fn = build_mixup(args, model.num_classes)
    criterion = build_criterion(args, model.num_classes, class_names, mixup_active=mixup_fn is not None)
    task = RelationClassificationTask(model, criterion, device=device, verbose=args.rank == 0).to(device)
    optimizer = build_optimizer(args, task)
    amp_autocast, loss_scaler = setup_amp(args, device)
    if args.model_ema:
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)
    start_epoch = resume(args, task, optimizer, loss_scaler)
    if args.distributed:
        ddp_kwargs = {"broadcast_buffers": False} if args.no_ddp_bb else {}  # no device_ids on CPU
        task.prepare_distributed(device_ids=[device] if device.type == "cuda" else None, **ddp_kwargs)
    return dict(device=device, task=task, optimizer=optimizer, amp_autocast=amp_autocast, loss_scaler=loss_scaler,
                mixup_fn=mixup_fn, start_epoch=start_epoch, class_names=class_names, train_ds=train_ds,
                val_ds=val_ds, data_config=data_config)


def output_directory(args: argparse.Namespace, data_config: dict) -> str | None:
    """``<output>/train/<experiment>`` on rank 0 (timm's layout), None on other ranks."""
    if args.rank != 0:
        return None
    name = args.experiment or "-".join([datetime.now().strftime("%Y%m%d-%H%M%S"), safe_model_name(args.model),
                                        str(data_config["input_size"][-1]), args.loss_type])
    return get_outdir(args.output or "./output", "train", name)


def build_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, updates_per_epoch: int,
                    start_epoch: int) -> tuple[Any, int]:
    """timm's scheduler factory; on resume, stepped to `start_epoch` as timm's train.py does."""
    lr_scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args),
                                                   updates_per_epoch=updates_per_epoch)
    if start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)
    return lr_scheduler, num_epochs


def build_saver(args: argparse.Namespace, parts: dict, output_dir: str | None) -> CheckpointSaver | None:
    """timm's CheckpointSaver on rank 0 (the task adds the loss state); keeps the history when resuming in place."""
    if output_dir is None:
        return None
    saver = CheckpointSaver(parts["task"].get_eval_model(), parts["optimizer"], args=args,
                            amp_scaler=parts["loss_scaler"], checkpoint_dir=output_dir, recovery_dir=output_dir,
                            decreasing="loss" in args.eval_metric, max_history=args.checkpoint_hist, task=parts["task"])
    if args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(output_dir):
        saver.load_state_dict_from_checkpoint(args.resume)
    return saver


def evaluate(args: argparse.Namespace, parts: dict, loader: Any) -> dict[str, float]:
    """Validation metrics of the model (and of its EMA, prefixed ``ema_``)."""
    task, device, autocast = parts["task"], parts["device"], parts["amp_autocast"]
    metrics = validate(task.get_eval_model(), loader, device, autocast, verbose=args.rank == 0)
    if task.has_ema():
        ema = validate(task.get_eval_model(ema=True), loader, device, autocast, " (EMA)", verbose=args.rank == 0)
        metrics.update({f"ema_{k}": v for k, v in ema.items()})
    return metrics


def run_epochs(args: argparse.Namespace, parts: dict, output_dir: str | None) -> dict[str, float]:
    """The epoch loop: reseed, train, loss epoch end (OLS swap), validate, schedule, checkpoint, summary."""
    task, optimizer, mixup_fn, start_epoch = parts["task"], parts["optimizer"], parts["mixup_fn"], parts["start_epoch"]
    train_loader = build_loader(parts["train_ds"], args.batch_size, args, training=True)
    val_loader = build_loader(parts["val_ds"], args.validation_batch_size or args.batch_size, args, training=False)
    lr_scheduler, num_epochs = build_scheduler(args, optimizer, len(train_loader), start_epoch)
    saver, eval_metrics, num_updates = build_saver(args, parts, output_dir), {}, start_epoch * len(train_loader)
    for epoch in range(start_epoch, num_epochs):
        seed_epoch(args.seed, epoch, args.rank)
        train_loader.sampler.set_epoch(epoch)
        if mixup_fn is not None and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
            mixup_fn.mixup_enabled = False
        train_metrics, num_updates = train_one_epoch(
            epoch, task, train_loader, optimizer, args, parts["device"], lr_scheduler=lr_scheduler,
            amp_autocast=parts["amp_autocast"], loss_scaler=parts["loss_scaler"], mixup_fn=mixup_fn,
            num_updates=num_updates)
        task.end_epoch()
        eval_metrics = evaluate(args, parts, val_loader)
        lr_scheduler.step(epoch + 1, eval_metrics[args.eval_metric])
        if saver is not None:
            saver.save_checkpoint(epoch, metric=eval_metrics[args.eval_metric])
            summary = os.path.join(output_dir, "summary.csv")
            update_summary(epoch, train_metrics, eval_metrics, filename=summary, lr=optimizer.param_groups[0]["lr"],
                           write_header=not os.path.exists(summary))
            _logger.info(f"Epoch {epoch}: top1 {eval_metrics['top1']:.2f}, {train_metrics['epoch_time']:.1f}s")
    return eval_metrics


def main(argv: list[str] | None = None) -> dict:
    """Train. Returns ``{"metrics": last validation metrics, "world_size", "rank", "output_dir"}`` on every rank."""
    args = parse_args(argv)
    parts = setup(args)
    if args.rank == 0:
        _logger.info(f"Training {args.model} with loss {args.loss_type} on {args.device}, world size "
                     f"{args.world_size}, global batch {args.batch_size * args.world_size}.")
    output_dir = output_directory(args, parts["data_config"])
    metrics = run_epochs(args, parts, output_dir)
    if output_dir is not None:
        save_relation_matrix(parts["task"].loss, parts["class_names"], os.path.join(output_dir, "relation_matrix"),
                             source_model=args.model, dataset=os.path.basename(os.path.normpath(args.data_dir)),
                             epochs=args.epochs)
    if args.distributed:
        torch.distributed.barrier()
    if args.owns_process_group:
        torch.distributed.destroy_process_group()
    return {"metrics": metrics, "world_size": args.world_size, "rank": args.rank, "output_dir": output_dir}


if __name__ == "__main__":
    setup_default_logging()
    main(sys.argv[1:])
