"""Base class of every loss: validation, float32 maths under autocast, target handling, cross-process state."""
from __future__ import annotations

import abc
from contextlib import nullcontext
from typing import ClassVar

import torch
from torch import Tensor, nn

from .checks import FAULTS, NO_FAULT, CheckedRows
from .eager import eager_only
from .functional import may_sync, one_hot
from .spec import UNREGISTERED, MethodCard, MethodSpec, SpecField
from .states import Reduction, StateSpec, check_state, process_group, reduce_state, world_size
from .tokens import as_rows, reduce_rows, resolve_ignore_index
from .validation import as_class_ids, check_alpha, check_finite_loss, check_ignore_index, check_logits_shape, \
    check_num_classes, check_reduction, check_target, check_target_shape, target_ok

HALF_DTYPES = (torch.bfloat16, torch.float16)  # read as they are by `casts_logits` losses; float64 becomes float32


class RelationLoss(nn.Module, CheckedRows, metaclass=abc.ABCMeta):
    """A classification loss whose targets spread mass according to a class-relation matrix R (K×K).

    Subclasses implement `compute` (per-sample loss from float32 logits and dense targets) and
    `relation_matrix`; they may implement `update` (training-time statistics) and declare every per-process
    state with `add_state` and its reduction, which `sync_states` applies (torchmetrics style).

    Args:
        num_classes: Number of classes K.
        alpha: Mass moved off the one-hot, in [0, 1] (one meaning for every method); ``None`` takes the spec's
            `default_alpha`.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-sample values, [B] or [B, T]). The mean is
            over the labels that are not ignored. An empty batch (B = 0, e.g. the last shard of a sampler) or one
            whose labels are all ignored gives 0 for ``"mean"`` and ``"sum"`` (``F.cross_entropy`` gives NaN for
            ``"mean"``: 0 keeps logged averages and other processes' gradients intact), with zero gradients.
        check_inputs: Check labels and the relation rows a batch reads before, and the loss value after every call;
            False skips them all. Where `functional.may_sync` holds (CPU, eager) a defect raises at once, before any
            state changes; elsewhere (GPU, compiled graphs) the checks are device-side flags (no host sync) that
            `raise_deferred` raises with the batch index at the training loop's next sync point, and a flagged
            batch adds nothing to the statistics. Under `torch.compile` the checks are the only graph breaks; with
            False the step compiles as one graph (``fullgraph=True``).
        ignore_index: Label whose samples (tokens) count nowhere: no loss, no gradient, no statistics, not in the
            mean (as ``F.cross_entropy``). None (default): -100 for token logits [B, T, K] (transformers' label of
            padding and continuation sub-tokens) and nothing for sequence logits [B, K], where a -100 label is
            refused as a labelling bug; set it (e.g. -100) to skip unlabelled rows of [B, K] too.
    """

    spec: ClassVar[MethodSpec] = UNREGISTERED  # the method's facts, set by @register_loss(MethodSpec(...))
    name: SpecField[str] = SpecField()
    default_alpha: SpecField[float] = SpecField()
    learns_relations: SpecField[bool] = SpecField()
    requires_optimizer: SpecField[bool] = SpecField()
    relation_weight_decay: SpecField[float | None] = SpecField()
    supports_top_n: SpecField[bool] = SpecField()
    logits_kind: SpecField[str | None] = SpecField()
    period_option: SpecField[str | None] = SpecField()
    requires_matrix: SpecField[bool] = SpecField()
    card: SpecField[MethodCard | None] = SpecField()
    # How `forward` feeds `compute` (implementation switches of the class, not facts of the method):
    dense_hard_targets: ClassVar[bool] = True  # False: `compute`/`update` get target=None for hard labels
    casts_logits: ClassVar[bool] = False  # True: `compute` gets bf16/fp16 logits as they are and does float32 maths
    check_flags: Tensor  # buffer (not saved): first batch of each deferred defect (`checks.DeferredChecks`)

    def __init__(self, num_classes: int, alpha: float | None = None, reduction: str = "mean", check_inputs: bool = True,
                 ignore_index: int | None = None) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.alpha = check_alpha(self.spec.default_alpha if alpha is None else alpha)
        self.reduction = check_reduction(reduction)
        self.check_inputs = check_inputs
        self.ignore_index = check_ignore_index(ignore_index)
        self.batches_seen = 0
        self._states: list[StateSpec] = []
        self._rules: dict[str, str] = {}  # tensor name -> `checks.RULES` key (default: finite), checked at load
        self.batch_ok: Tensor | None = None  # deferred checks: whether the current batch passed them (0-d bool)
        self.register_buffer("check_flags", torch.full((len(FAULTS),), NO_FAULT), persistent=False)
        self._register_load_state_dict_pre_hook(self._check_loaded_state)
        self.register_state_dict_pre_hook(lambda module, *_: module.raise_deferred("a state_dict() call (a save)"))

    @classmethod
    def has_update_period(cls, top_n: int | None = None) -> bool:
        """Alias of ``spec.has_update_period(top_n)`` (see `SpecField`)."""
        return cls.spec.has_update_period(top_n)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of `logits` [B, K] against class ids [B] (any integer dtype) or soft targets [B, K], or of token
        logits [B, T, K] against labels [B, T] (or soft [B, T, K]); float32 maths and value whatever the logits' dtype
        (float64 included), gradients in the logits' dtype. Labels equal to the ignore index (`ignore_index`; -100
        for token logits by default) are masked out without a host sync (`tokens`).

        With `check_inputs`, shapes and labels are checked before any work, and a non-finite loss (NaN or +inf
        logits) raises before `update` changes any state; finite losses cost no extra pass over the logits.
        An empty batch adds nothing to the statistics but counts as a batch of an update period (`period_option`),
        so processes whose shard is empty stay in step with the others.
        """
        target = as_class_ids(target)  # any integer dtype -> int64; bool refused (no sync)
        ignore_index = resolve_ignore_index(self.ignore_index, logits)
        self.batch_ok = None
        if self.check_inputs:
            target = self._check_inputs(logits, target, ignore_index)
        elif not torch.compiler.is_compiling():  # a Python int read in a compiled graph would recompile it each call
            self.batches_seen += 1
        rows = as_rows(logits, target, ignore_index)  # [N, K] rows, ignored labels masked
        device = logits.device.type
        autocast = torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else nullcontext()
        with autocast:
            logits32 = rows.logits if self.casts_logits and logits.dtype in HALF_DTYPES else rows.logits.float()
            labels = None if torch.is_floating_point(rows.target) else rows.target
            if labels is None:
                dense: Tensor | None = rows.target.float()
            else:  # skip the [B, K] one-hot when the subclass works from class ids alone
                dense = one_hot(labels, self.num_classes) if self.dense_hard_targets else None
            per_sample = self.compute(logits32, dense, labels)
            loss = reduce_rows(per_sample, rows.valid, self.reduction, rows.shape)
            if self.check_inputs:  # losses are >= 0, so a non-finite sample makes the reduced loss non-finite
                self._check_loss(loss, per_sample, rows.logits)
            if self.training:
                with torch.no_grad():
                    self._update(logits32.detach(), dense, labels, rows.valid)
        return loss

    @eager_only
    def _check_inputs(self, logits: Tensor, target: Tensor, ignore_index: int | None) -> Tensor:
        """Count the call and check shapes (host-side, free) and labels (at once, or as a deferred flag); returns
        the target, with class ids clamped into [0, K) when deferred (an out-of-range id would be a device-side
        assert in an indexing kernel, which no later check could report; the flagged batch adds no statistics).
        Ignored labels stay as they are."""
        batch, self.batches_seen = self.batches_seen, self.batches_seen + 1
        check_logits_shape(logits, self.num_classes, batch)
        if may_sync(logits):
            check_target(target, logits.shape, self.num_classes, batch, ignore_index)
            return target
        check_target_shape(target, logits.shape, self.num_classes, batch)
        self._defer("labels", target_ok(target, self.num_classes, ignore_index), batch)
        if torch.is_floating_point(target):
            return target
        clamped = target.clamp(0, self.num_classes - 1)
        return clamped if ignore_index is None else torch.where(target == ignore_index, target, clamped)

    @eager_only
    def _check_loss(self, loss: Tensor, per_sample: Tensor, logits: Tensor) -> None:
        """Raise on a non-finite loss, before `update` changes any state (or flag it, see `check_inputs`)."""
        if may_sync(loss):
            check_finite_loss(loss, per_sample, logits, self.batches_seen - 1)
        else:
            self._defer("loss", torch.isfinite(loss.detach()).all(), self.batches_seen - 1)

    def _update(self, logits: Tensor, target: Tensor | None, labels: Tensor | None, valid: Tensor | None) -> None:
        """`update`, with the mask of counted labels only when some label may be ignored (subclasses that never
        see ignored labels need not take `valid`)."""
        if valid is None:
            self.update(logits, target, labels)
        else:
            self.update(logits, target, labels, valid=valid)

    @abc.abstractmethod
    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        """Per-sample loss [B] from float32 logits, dense float32 targets [B, K] and class ids (None if soft).

        `target` is None for hard labels when the class sets ``dense_hard_targets = False``.
        """

    def update(self, logits: Tensor, target: Tensor | None, labels: Tensor | None, valid: Tensor | None = None) -> None:
        """Training-time statistics hook (called under no_grad, only in `train()` mode); rows with `valid` False
        ([N] bool, given when labels may be ignored) carry an ignored label (replaced by class 0) and must not count."""

    @abc.abstractmethod
    def relation_matrix(self) -> Tensor:
        """The current K×K row-stochastic class-relation matrix R (float32, detached)."""

    def relation_topk(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The `n` largest entries of each row of R (all K when None): (class ids [K, n], probabilities [K, n])."""
        values, indices = self.relation_matrix().topk(min(n or self.num_classes, self.num_classes), dim=-1)
        return indices, values

    def target_matrix(self) -> Tensor:
        """Per-class targets (1-α)·I + α·R: row y is the full target of a sample of class y."""
        eye = torch.eye(self.num_classes, device=self.relation_matrix().device)
        return (1.0 - self.alpha) * eye + self.alpha * self.relation_matrix()

    def end_epoch(self) -> None:
        """Called by training loops at each epoch end (OLS swaps its matrix here)."""

    def add_state(self, name: str | tuple[str, ...], default: Tensor | tuple[Tensor, ...],
                  dist_reduce_fx: Reduction = "sum") -> None:
        """Declare per-process state: buffers saved in `state_dict` and reduced across processes by `sync_states`.

        Every buffer whose value differs between processes must be declared here (torchmetrics' ``add_state``);
        `sync_states`, `consolidate_states` and `keep_states_on_rank_zero` then cover it.

        Args:
            name: Buffer name, or the names of buffers reduced together (e.g. a table's index and values).
            default: Initial value(s), a constant tensor per name: the identity of the reduction (zeros for
                ``"sum"``, an empty table for `merge_top_tables`). Ranks other than 0 are reset to it.
            dist_reduce_fx: ``"sum"`` (all-reduce), or a callable merging the per-process values, given as a list
                (rank order) of tuples of tensors, into one tuple (e.g. `merge_top_tables`).
        """
        names = (name,) if isinstance(name, str) else tuple(name)
        defaults = (default,) if isinstance(default, Tensor) else tuple(default)
        spec = check_state(names, defaults, dist_reduce_fx)
        for buffer_name, value in zip(names, defaults):
            self.register_buffer(buffer_name, value.clone())
        self._states.append(spec)

    def sync_states(self) -> None:
        """Replace every declared state by its reduction over processes (collective; a no-op in one process).

        Called before every swap (OLS) and slot refresh (LS++/LLS), which then clear the states: a second call
        before new updates would count every process's contribution again.
        """
        size = world_size()
        if size > 1:
            for spec in self._states:
                reduce_state(tuple(getattr(self, n) for n in spec.names), spec.reduction, size)

    def consolidate_states(self) -> None:
        """Reduce every declared state onto rank 0 and reset it elsewhere (collective; a no-op in one process).

        The next `sync_states` gives the same global state, and a checkpoint written by rank 0 then holds it, so it
        resumes on any number of processes (load it on every rank, then call `keep_states_on_rank_zero`). Call on
        every rank before rank 0 saves.
        """
        if world_size() > 1:
            self.sync_states()
            self.keep_states_on_rank_zero()

    def keep_states_on_rank_zero(self) -> None:
        """Reset the declared states to their defaults on ranks other than 0: after every rank loaded a consolidated
        checkpoint, so that the global state is counted once."""
        group = process_group()
        if group is not None and group[0] != 0:
            for spec in self._states:
                for name, fill in zip(spec.names, spec.fills):
                    getattr(self, name).fill_(fill)

    @property
    def state_specs(self) -> tuple[StateSpec, ...]:
        """The declared per-process states (buffer names, reset values, reduction), in declaration order."""
        return tuple(self._states)

    def extra_repr(self) -> str:
        extra = "" if self.ignore_index is None else f", ignore_index={self.ignore_index}"
        return f"num_classes={self.num_classes}, alpha={self.alpha}, reduction={self.reduction!r}{extra}"
