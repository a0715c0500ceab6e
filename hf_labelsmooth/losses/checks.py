"""Checks of a loss's own tensors and deferred (device-side) check flags.

Two halves, one per cost model:

- `check_tensor` / `check_rows`: the host-side checks of a matrix or state tensor where it enters a loss (a
  checkpoint's state dict, a file given as ``matrix=``, a swap), naming the tensor, its first bad rows and where it
  came from. They run once per load or swap, never per step.
- `DeferredChecks`: where a check would stall an accelerator (`functional.may_sync` is False), each step records
  device-side flags instead -- the first batch index at which each kind of defect was seen, an int64 tensor updated
  with `torch.minimum` (no host read). `raise_pending` reads them once, at a point where the training loop already
  synchronises (a logging step, an epoch end, before a checkpoint is written), and raises the error the eager path
  would have raised, with its batch index.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .eager import eager_only
from .functional import may_sync

# Tensor rules: what a loss's tensor must hold (declared by its storage with `RelationLoss.expect`).
RULES = {
    "finite": "finite values",
    "nonneg": "finite non-negative values",
    "probability": "finite probabilities in [0, 1]",
    "stochastic": "finite non-negative rows summing to 1",
}
ROW_SUM_ATOL = 1e-4
NO_FAULT = torch.iinfo(torch.int64).max
FAULTS = {  # kind -> (expected, fix); the message is "Expected <expected> but got a defect in batch <b> ..."
    "labels": ("labels in [0, num_classes) (class ids) or soft targets [B, K] with non-negative rows summing to 1",
               "fix the dataset's labels or the Mixup targets (pass them on the CPU to see the rows)"),
    "loss": ("a finite loss", "lower the learning rate, clip gradients, or train in bf16/fp32 instead of fp16"),
    "rows": ("finite non-negative relation rows summing to 1",
             "resume from an earlier checkpoint or reload the matrix with its validation"),
    "swap": ("finite accumulated predictions at a swap (the non-finite rows were not installed)",
             "find the batch with NaN/inf logits (check_inputs=True catches it)"),
}


def tensor_defects(value: Tensor, rule: str) -> Tensor:
    """Bool [rows]: which rows (first dimension; a 0-d or 1-d tensor is one row per entry) break `rule`."""
    x = value.detach()
    x = x.reshape(x.shape[0], -1) if x.ndim >= 2 else x.reshape(-1, 1)
    x = x.double()
    bad = ~torch.isfinite(x).all(dim=-1)
    if rule in ("nonneg", "probability", "stochastic"):
        bad |= (x < 0).any(dim=-1)
    if rule == "probability":
        bad |= (x > 1 + ROW_SUM_ATOL).any(dim=-1)
    if rule == "stochastic" and x.shape[-1] > 1:
        bad |= (x.sum(dim=-1) - 1).abs() > ROW_SUM_ATOL
    return bad


def check_tensor(value: Tensor, rule: str, name: str, source: str) -> None:
    """Raise naming `name`, its first bad rows and `source` when `value` breaks `rule` (one host sync)."""
    if not torch.is_floating_point(value) or not value.numel():
        return
    bad = tensor_defects(value, rule)
    if not bool(bad.any()):
        return
    rows = bad.nonzero().flatten()[:8].tolist()
    x = value.detach().reshape(value.shape[0], -1) if value.ndim >= 2 else value.detach().reshape(-1, 1)
    sample = x[rows[0]][:6].tolist()
    raise ValueError(f"Expected `{name}` to hold {RULES[rule]} but got rows {rows} (row {rows[0]} starts {sample}) "
                     f"in {source}. Resume from an earlier checkpoint, or rebuild the matrix (its rows normalised).")


def rows_ok(rows: Tensor) -> Tensor:
    """0-d bool: every row of `rows` [n, K] is finite, non-negative and sums to 1 (device-side, no sync)."""
    sums = rows.sum(dim=-1)
    return ((sums - 1).abs() <= ROW_SUM_ATOL).all() & (rows.amin(dim=-1) >= 0).all() if rows.numel() else \
        torch.ones((), dtype=torch.bool, device=rows.device)


def check_rows(rows: Tensor, classes: Tensor, name: str, batch: int) -> None:
    """Raise naming the classes whose rows of `name` are not distributions (host-side, one sync on a scalar)."""
    if bool(rows_ok(rows)):
        return
    bad = tensor_defects(rows, "stochastic")
    ids = classes[bad].unique()[:8].tolist()
    raise ValueError(f"Expected `{name}` to hold {RULES['stochastic']} but got rows {ids} in batch {batch} (the "
                     "matrix was changed in place after its checks at load and swap). Resume from an earlier "
                     "checkpoint or reload the matrix with its validation.")


class DeferredChecks:
    """The first batch index of each kind of defect (`FAULTS`), recorded on the device; raised by `raise_pending`.

    Args:
        flags: The loss's int64 buffer of ``len(FAULTS)`` entries, `NO_FAULT` where nothing was seen.
    """

    kinds = tuple(FAULTS)

    def __init__(self, flags: Tensor) -> None:
        self.flags = flags

    def record(self, kind: str, ok: Tensor, batch: int) -> None:
        """Note `batch` under `kind` unless `ok` (a 0-d bool tensor); no host read."""
        i = self.kinds.index(kind)
        seen = torch.where(ok, NO_FAULT, batch)
        self.flags[i] = torch.minimum(self.flags[i], seen)

    def raise_pending(self, where: str) -> None:
        """Raise the earliest recorded defect (one host sync) and clear the flags; nothing when all is well."""
        first = self.flags.tolist()
        faults = sorted((b, kind) for b, kind in zip(first, self.kinds) if b != NO_FAULT)
        if not faults:
            return
        self.flags.fill_(NO_FAULT)
        batch, kind = faults[0]
        expected, fix = FAULTS[kind]
        raise ValueError(f"Expected {expected} but got a defect in batch {batch} of this loss (found at {where}; "
                         f"checked on the device, without a host sync per step): {fix}.")


class CheckedRows:
    """The checks half of `RelationLoss` (a mixin): tensor rules checked at load, rows checked as a batch reads them,
    deferred flags and their raising. Expects the loss's `check_flags`, `_rules`, `_states`, `batch_ok`,
    `batches_seen` and `check_inputs`."""

    check_flags: Tensor
    check_inputs: bool
    batches_seen: int
    batch_ok: Tensor | None
    _rules: dict[str, str]
    _states: list[Any]
    named_parameters: Any  # nn.Module's (RelationLoss lists nn.Module first)
    named_buffers: Any

    @eager_only
    def _check_rows(self, rows: Tensor, classes: Tensor, name: str) -> None:
        if may_sync(rows):
            check_rows(rows.detach(), classes, name, self.batches_seen - 1)
        else:
            self._defer("rows", rows_ok(rows.detach()), self.batches_seen - 1)

    def checked_rows(self, rows: Tensor, classes: Tensor, name: str) -> Tensor:
        """`rows` (R[classes], [n, K]) after checking that they are distributions (with `check_inputs`)."""
        if self.check_inputs:
            self._check_rows(rows, classes, name)
        return rows

    def _defer(self, kind: str, ok: Tensor, batch: int) -> None:
        DeferredChecks(self.check_flags).record(kind, ok, batch)
        self.batch_ok = ok if self.batch_ok is None else self.batch_ok & ok

    def valid(self, mask: Tensor) -> Tensor:
        """`mask` [B] with every sample off when a deferred check flagged this batch: statistics skip it."""
        return mask if self.batch_ok is None else mask & self.batch_ok

    @eager_only
    def raise_deferred(self, where: str = "a sync point") -> None:
        """Raise the earliest defect the deferred checks recorded (one host sync; see `check_inputs`).

        Training loops call it where they synchronise anyway: a logging step, an epoch end, before a checkpoint is
        written (`state_dict` calls it too), so nothing is saved from a poisoned state.
        """
        DeferredChecks(self.check_flags).raise_pending(where)

    def expect(self, name: str, rule: str) -> None:
        """Declare what tensor `name` holds (a `checks.RULES` key), checked whenever a state dict is loaded."""
        self._rules[name] = rule

    def _check_loaded_state(self, state: dict, prefix: str, *_: object) -> None:
        """Refuse a state dict with a non-finite (or, per `expect`, negative / non-stochastic) tensor before any of
        it is copied in."""
        source = f"the state dict loaded into {type(self).__name__} (a checkpoint)"
        self.check_states(source, {name: state[prefix + name] for name in self._tensor_names() if prefix + name in
                                   state and isinstance(state[prefix + name], Tensor)}, prefix)

    def _tensor_names(self) -> list[str]:
        return [name for name, _ in [*self.named_parameters(recurse=False), *self.named_buffers(recurse=False)]
                if name != "check_flags"]

    def check_states(self, source: str, tensors: dict[str, Tensor] | None = None, prefix: str = "") -> None:
        """Raise naming the tensor, its rows and `source` when a parameter, buffer or state breaks its rule (`expect`;
        default: finite, and non-negative for the `add_state` states, sums of probabilities and counts)."""
        states = {n for spec in self._states for n in spec.names}
        for name, value in (tensors if tensors is not None else {n: getattr(self, n) for n in self._tensor_names()}
                            ).items():
            check_tensor(value, self._rules.get(name, "nonneg" if name in states else "finite"), prefix + name, source)

