"""Registry-driven loss cases (every registered loss, dense and ``top_n``, hard and Mixup targets) and one short
training run that gives the same result on 1 process and on N gloo processes fed shards of the same global batches.

A new loss gets every test built on `loss_cases()` for free. The run uses ``reduction="sum"`` and sums the loss
parameters' gradients across processes, so N processes compute exactly the single-process gradient of the global
batch even when shards are uneven or empty (3 processes, global batch 2).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

import hf_labelsmooth
from hf_labelsmooth.losses.states import process_group

K, TOP_N, PERIOD = 5, 3, 3
TOKENS = 4  # sequence length of the "tokens" cases
BATCH_SIZES = (6, 5, 2, 6, 4, 3)  # global batches; 2 over 3 processes leaves one shard empty (at a period end)
CHECKPOINT_AFTER = 1  # a checkpoint mid-period: after the second batch of the first period


@dataclass(frozen=True)
class LossCase:
    """One registered loss in one storage (dense or ``top_n``) with one kind of targets."""

    name: str
    top_n: int | None
    targets: str  # "hard" (class ids), "mixup" (timm-style smoothed Mixup targets) or "tokens" ([B, T] with -100)

    @property
    def id(self) -> str:
        return f"{self.name}-{'dense' if self.top_n is None else f'top{self.top_n}'}-{self.targets}"


def loss_cases(targets: tuple[str, ...] = ("hard", "mixup")) -> list[LossCase]:
    """Every registered loss, dense and (where supported) sparse with `TOP_N` slots, with each kind of targets."""
    cases = []
    for name in hf_labelsmooth.list_losses():
        storages = [None, TOP_N] if hf_labelsmooth.get_loss_class(name).supports_top_n else [None]
        cases += [LossCase(name, top_n, kind) for top_n in storages for kind in targets]
    return cases


def make_case_loss(case: LossCase, **kwargs) -> hf_labelsmooth.RelationLoss:
    """The case's loss with its required options (a fixed prior matrix, the same on every process)."""
    options: dict = {} if case.top_n is None else {"top_n": case.top_n}
    if hf_labelsmooth.get_loss_class(case.name).requires_matrix:
        g = torch.Generator().manual_seed(5)
        options["matrix"] = torch.randn(K, K, generator=g).mul(2).softmax(dim=-1)
    return hf_labelsmooth.create_loss(case.name, num_classes=K, **{**options, **kwargs})


def make_targets(kind: str, labels: Tensor, generator: torch.Generator, smoothing: float = 0.1) -> Tensor:
    """Class ids, or Mixup targets as timm builds them: λ·y + (1-λ)·flip(y), smoothed (off value smoothing/K)."""
    if kind == "hard":
        return labels
    lam = float(torch.empty(()).uniform_(0.3, 0.7, generator=generator))
    off, on = smoothing / K, 1.0 - smoothing + smoothing / K
    one_hot = F.one_hot(labels, K).float() * (on - off) + off
    return lam * one_hot + (1.0 - lam) * one_hot.flip(0)


def global_batches(case: LossCase) -> list[tuple[Tensor, Tensor]]:
    """Logits (label boosted, so OLS sees correct samples) and targets of every global batch, the same everywhere."""
    g = torch.Generator().manual_seed(11)
    batches = []
    for size in BATCH_SIZES:
        if case.targets == "tokens":  # [B, T, K] logits, labels [B, T] with about a third ignored (-100)
            labels = torch.randint(0, K, (size, TOKENS), generator=g)
            logits = torch.randn(size, TOKENS, K, generator=g) * 1.5 + 2.0 * F.one_hot(labels, K)
            batches.append((logits, labels.masked_fill(torch.rand(size, TOKENS, generator=g) < 0.3, -100)))
            continue
        labels = torch.randint(0, K, (size,), generator=g)
        logits = torch.randn(size, K, generator=g) * 1.5 + 2.0 * F.one_hot(labels, K)
        batches.append((logits, make_targets(case.targets, labels, g)))
    return batches


def _shard(x: Tensor, rank: int, world: int) -> Tensor:
    return torch.tensor_split(x, world)[rank]


def narrow_tables(case: LossCase) -> dict[str, int]:
    """Options that make a sparse loss's per-row tables too narrow to hold every class (lossy merges)."""
    params = inspect.signature(hf_labelsmooth.get_loss_class(case.name).__init__).parameters
    return {name: 1 for name in ("buffer_factor", "candidates") if name in params} if case.top_n else {}


def _new_loss(case: LossCase, options: dict) -> hf_labelsmooth.RelationLoss:
    cls = hf_labelsmooth.get_loss_class(case.name)
    period = {cls.period_option: PERIOD} if cls.has_update_period(case.top_n) else {}
    return make_case_loss(case, reduction="sum", **period, **options).train()


@torch.no_grad()
def _sgd_step(loss: hf_labelsmooth.RelationLoss, world: int, lr: float = 0.5) -> None:
    """Plain SGD on the loss's parameters with their gradients summed over processes (torch.optim.SGD's update; the
    optimizer itself is not used because it imports torch._dynamo, seconds per worker)."""
    for param in loss.parameters():
        grad = torch.zeros_like(param) if param.grad is None else param.grad
        if world > 1:
            dist.all_reduce(grad)
        param.sub_(grad, alpha=lr)
        param.grad = None


def _resume(loss: hf_labelsmooth.RelationLoss, case: LossCase, path: str, options: dict) -> hf_labelsmooth.RelationLoss:
    """Consolidate on rank 0, save there, load on every rank into a new loss: what a resumed run does."""
    loss.consolidate_states()
    group = process_group()
    if group is None or group[0] == 0:
        save_file({k: v.contiguous() for k, v in loss.state_dict().items()}, path)
    if group is not None:
        dist.barrier()
    resumed = _new_loss(case, options)
    resumed.load_state_dict(load_file(path))
    resumed.keep_states_on_rank_zero()
    return resumed


def run_case(case: LossCase, rank: int, world: int, checkpoint: str | None = None,
             options: dict | None = None) -> dict[str, Tensor]:
    """Train the case's loss on this process's shards; end every period; optionally resume from a checkpoint.

    Returns the global loss of every batch, the relation matrix and the final state_dict (parameters, buffers).
    """
    options = options or {}
    loss = _new_loss(case, options)
    values = []
    for step, (logits, target) in enumerate(global_batches(case)):
        value = loss(_shard(logits, rank, world).requires_grad_(True), _shard(target, rank, world))
        value.backward()
        _sgd_step(loss, world)
        value = value.detach().clone()
        if world > 1:
            dist.all_reduce(value)
        values.append(value)
        if checkpoint is not None and step == CHECKPOINT_AFTER:
            loss = _resume(loss, case, checkpoint, options)
        if (step + 1) % PERIOD == 0:
            loss.end_epoch()  # a no-op for the losses that count batches (their period is PERIOD batches too)
    state = {f"state.{k}": v.detach().clone() for k, v in loss.state_dict().items()}
    return {"loss": torch.stack(values), "matrix": loss.relation_matrix(), **state}
