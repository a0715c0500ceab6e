"""Top-N learnable rows (``top_n=N``) for large K (LS++, LLS): the K×K matrix is never built.

Every row y keeps N *slots*: class indices ``slots[y]`` (K×N long) with their own weights; the classes outside the
slots (the *tail*) share the rest of the row's mass uniformly. The tail is what keeps LLS's KL(p‖t) finite (a
target of exactly 0 would make it infinite) and makes a fresh sparse loss equal a fresh dense one (uniform rows).
With N = K (lls, ols) or N = K-1 (lspp) the tail is empty and the sparse loss equals the dense one.
Hard labels use fused closed forms (the method's `top_n_loss`, e.g. `kernels.fused_lls`: gathers at the slots plus
full-row sums, no [B, K] target); soft targets expand only the rows of the classes that carry mass in the batch.

`TopNLogits` registers on its loss the parameters ``logits`` (K×N, the slot logits) and
``tail_logits`` (K, one logit shared by each of the row's n_tail tail classes), so
``R[y] = softmax([logits[y], tail_logits[y] repeated n_tail times])`` placed at ``slots[y]`` and the tail.
Slots start from ``slot_init`` (a K×N index table, e.g. the top-N of a prior matrix) or from the neighbours
y+1, …, y+N (mod K; LLS puts y itself in slot 0, LS++ never holds y). Refresh: during training each sample's
most probable *wrong* class that is not yet a slot of its row is recorded with its probability in a small
per-row candidate table (K×`candidates`, summed per class, top entries kept; a state declared with `add_state`, so
the tables of all processes are merged first); at `refresh()` (each `end_epoch()`, or every `refresh_every` training
batches) each row swaps its lowest-logit slots (at most ``max(1, swap_fraction·N)``, never LLS's own-class slot) for
its highest-scoring candidates. A new slot takes the row's tail logit, so the incoming class keeps its logit; the
evicted class joins the tail (the only change to the row is that one class's logit becoming the tail's). Optimiser
moments of a swapped slot are carried over (they are small, as the evicted slot had the lowest logit).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..base import RelationLoss
from ..eager import eager_only
from ..kernels.wrong_class import most_probable_wrong
from ..sparse.grouped_merge import merge_groups
from ..sparse.slots import DENSE_MATRIX_LIMIT, check_slots, neighbour_slots, scatter_rows
from ..sparse.tables import merge_top_tables
from .logits import HardLabelKernels
from .tensors import OnLoss


class TopNLogits:
    """N learnable slots per row plus a shared tail logit (see the module docstring); a `LogitRows`."""

    logits = OnLoss()  # parameters
    tail_logits = OnLoss()
    slots = OnLoss()  # buffers
    refresh_steps = OnLoss()
    candidate_index = OnLoss()  # states (`add_state`)
    candidate_score = OnLoss()

    def __init__(self, loss: RelationLoss, top_n: int, include_self: bool, slot_init: Tensor | None,
                 refresh_every: int | None, swap_fraction: float, candidates: int) -> None:
        self.loss, self.include_self, k = loss, include_self, loss.num_classes
        if refresh_every is not None and (not isinstance(refresh_every, int) or refresh_every < 1):
            raise ValueError(f"Expected `refresh_every` to be a positive integer or None but got {refresh_every!r}.")
        if not 0.0 < swap_fraction <= 1.0:
            raise ValueError(f"Expected `swap_fraction` in (0, 1] but got {swap_fraction!r}.")
        slots = (neighbour_slots(k, top_n, self.include_self) if slot_init is None
                 else check_slots(slot_init, k, top_n, self.include_self))
        self.top_n, self.refresh_every, self.swap_fraction = top_n, refresh_every, swap_fraction
        self.n_tail = k - top_n - (0 if self.include_self else 1)
        loss.register_parameter("logits", nn.Parameter(torch.zeros(k, top_n)))
        loss.register_parameter("tail_logits", nn.Parameter(torch.zeros(k)))
        loss.register_buffer("slots", slots)
        loss.add_state(("candidate_index", "candidate_score"),  # per process: merged at each refresh
                       (torch.full((k, candidates), -1, dtype=torch.long), torch.zeros(k, candidates)),
                       dist_reduce_fx=merge_top_tables)
        loss.register_buffer("refresh_steps", torch.zeros((), dtype=torch.long))
        self.confusions: tuple[Tensor, Tensor] | None = None  # (wrong class, probability) found by `hard_loss`
        self.host_steps: int | None = 0  # host copy of `refresh_steps` (None after a load: read at the next check)
        loss.register_load_state_dict_post_hook(lambda *_: setattr(self, "host_steps", None))

    def slot_logs(self, classes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(slots [n, N], log R at the slots [n, N], log R of each tail class [n]; -inf when there is no tail)."""
        slot_logits = self.logits.index_select(0, classes).float()
        tail = self.tail_logits.index_select(0, classes).float()
        if self.n_tail == 0:
            norm = slot_logits.logsumexp(dim=-1)
            return self.slots[classes], slot_logits - norm[:, None], torch.full_like(tail, float("-inf"))
        norm = torch.cat([slot_logits, (tail + math.log(self.n_tail))[:, None]], dim=-1).logsumexp(dim=-1)
        return self.slots[classes], slot_logits - norm[:, None], tail - norm

    def log_rows(self, classes: Tensor) -> Tensor:
        """log R[classes] as dense [n, K] float32 rows (differentiable; -inf at the own class for LS++)."""
        slots, log_r, log_r_tail = self.slot_logs(classes)
        rows = scatter_rows(log_r_tail, slots, log_r, self.loss.num_classes)
        return rows if self.include_self else rows.scatter(1, classes[:, None], float("-inf"))

    def relation_rows(self, classes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        return self.log_rows(classes).to(dtype).exp()

    def hard_loss(self, kernels: HardLabelKernels, logits: Tensor, labels: Tensor, alpha: float) -> Tensor:
        """The kernel's top-N loss; in training it also finds each sample's most probable wrong class (`observe`)."""
        training = self.loss.training
        loss, wrong, score = kernels.top_n_loss(logits, labels, *self.slot_logs(labels), self.n_tail, alpha, training)
        self.confusions = (wrong, score) if training else None
        return loss

    def observe(self, logits: Tensor, target: Tensor | None, labels: Tensor | None,
                valid: Tensor | None = None) -> None:
        """Record the confusions the fused class-id pass found (`hard_loss`), else scan the logits; rows of ignored
        labels (`valid` False) record nothing."""
        confusions, self.confusions = self.confusions, None
        if labels is not None and confusions is not None:
            self.record_confusions(labels, *confusions, valid)
        elif labels is not None:
            self.observe_confusions(logits, labels, valid)
        else:
            assert target is not None  # soft targets always come dense (RelationLoss.forward)
            self.observe_confusions(logits, target.argmax(dim=-1))

    def end_epoch(self) -> None:
        """Refresh the slots at the epoch end (unless `refresh_every` batches is the period)."""
        if self.refresh_every is None:
            self.refresh()

    def parameter_names(self) -> set[str]:
        return {"logits", "tail_logits"}

    @torch.no_grad()
    def observe_confusions(self, logits: Tensor, classes: Tensor, valid: Tensor | None = None) -> None:
        """Record each sample's most probable wrong class (if not yet a slot of its row), scored by probability."""
        score, wrong = most_probable_wrong(logits.float().softmax(dim=-1), classes)
        self.record_confusions(classes, wrong, score, valid)

    @torch.no_grad()
    def record_confusions(self, classes: Tensor, wrong: Tensor, score: Tensor, valid: Tensor | None = None) -> None:
        """Add (row `classes`, class `wrong`, `score`) to the candidate table unless `wrong` is already a slot or the
        row's label is ignored (`valid` False); a batch flagged by a deferred check adds nothing."""
        new = self.loss.valid(~(self.slots[classes] == wrong[:, None]).any(dim=-1))
        new = new if valid is None else new & valid
        merge_groups(self.candidate_index, self.candidate_score, classes, wrong[:, None], score[:, None], new)
        self.refresh_steps.add_(1)
        if self.refresh_every is not None:
            self._refresh_on_period()

    @eager_only
    def _refresh_on_period(self) -> None:
        """Refresh every `refresh_every` batches (a host sync: a graph break under torch.compile)."""
        assert self.refresh_every is not None  # called only when a period is set
        self.host_steps = (int(self.refresh_steps) - 1 if self.host_steps is None else self.host_steps) + 1
        if self.host_steps % self.refresh_every == 0:  # counted on the host after one read: no sync per batch
            self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Swap each row's lowest-logit slots for its best candidates (see the module docstring); clear candidates.

        The candidate tables are first merged across processes (`sync_states`), so every process swaps the same
        slots: a slot column means the same class on every process, as the averaged slot-logit gradients assume.
        """
        self.loss.raise_deferred("a slot refresh")
        self.loss.sync_states()
        if self.loss.check_inputs:  # one host read per period
            self.loss.check_states("the candidate tables accumulated for this refresh")
        cand, score = self.candidate_index, self.candidate_score
        in_slots = (cand[:, :, None] == self.slots[:, None, :]).any(dim=-1)
        score = score.masked_fill(in_slots | (cand < 0), -1.0)
        n_swap = min(max(1, int(self.swap_fraction * self.top_n)), cand.shape[1], self.top_n)
        best_score, best = score.topk(n_swap, dim=-1)
        k = self.loss.num_classes
        eviction = self.logits.detach().float().clone()
        if self.include_self:
            eviction.masked_fill_(self.slots == torch.arange(k, device=eviction.device)[:, None], float("inf"))
        _, lowest = eviction.topk(n_swap, dim=-1, largest=False)
        do = best_score > 0
        rows = torch.arange(k, device=cand.device)[:, None].expand_as(lowest)[do]
        self.slots[rows, lowest[do]] = cand.gather(1, best)[do]
        self.logits.data[rows, lowest[do]] = self.tail_logits.data[rows]
        self.candidate_index.fill_(-1)
        self.candidate_score.zero_()

    def relation_topk(self, n: int | None) -> tuple[Tensor, Tensor]:
        """(slot class indices [K, N], their probabilities [K, N]) sorted by probability; the tail is left out."""
        classes = torch.arange(self.loss.num_classes, device=self.logits.device)
        with torch.no_grad():
            probs = self.log_rows(classes).exp().gather(1, self.slots)
        values, order = probs.topk(min(n or self.top_n, self.top_n), dim=-1)
        return self.slots.gather(1, order), values

    def relation_matrix(self) -> Tensor:
        k = self.loss.num_classes
        if k > DENSE_MATRIX_LIMIT:
            raise ValueError(f"Expected num_classes <= {DENSE_MATRIX_LIMIT} for a dense relation_matrix() of a sparse "
                             f"loss but got {k}; use relation_topk() instead.")
        with torch.no_grad():
            return self.log_rows(torch.arange(k, device=self.logits.device)).exp()
