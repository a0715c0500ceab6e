"""torch.compile: a model + loss step is one graph (``fullgraph=True``) for every registered loss, equal to eager.

Every case runs the same steps eagerly and compiled on twin copies (model, loss, SGD) and compares, step by step,
the loss, the gradients of the model and of the loss's own parameters, and every buffer of the loss (OLS
accumulators, sparse tables, slot candidates). The full matrix uses the ``aot_eager`` backend (Dynamo + AOTAutograd:
the graph capture and functionalisation that inductor starts from, in seconds); the slow test compiles every loss
with inductor, the default backend, in one graph per target kind.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F

import hf_labelsmooth
from tests.support.factories import generator, make_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K, B, D = 6, 8, 5
TOP_N = 3


def _cases() -> list[tuple[str, int | None]]:
    cases = []
    for name in hf_labelsmooth.list_losses():
        cases.append((name, None))
        if hf_labelsmooth.get_loss_class(name).supports_top_n:
            cases.append((name, TOP_N))
    return cases


CASES = _cases()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _targets(step: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [B, D] and targets of one step: class ids, Mixup targets (λ e_y + (1-λ) e_flip(y)), or tokens:
    inputs [2, B/2, D] with labels [2, B/2], some -100 (ignored: masked, no data-dependent shape)."""
    gen = generator(100 + step)
    x = torch.randn(B, D, generator=gen)
    y = torch.randint(0, K, (B,), generator=gen)
    y[::2] = step % K  # repeated classes: table merges with several samples of one row
    if kind == "tokens":
        return x.view(2, B // 2, D), y.masked_fill(torch.arange(B, device=y.device) % 3 == step % 3, -100).view(2, -1)
    if kind == "hard":
        return x, y
    lam = 0.7
    return x, lam * F.one_hot(y, K).float() + (1 - lam) * F.one_hot(y.flip(0), K).float()


def _twins(name: str, top_n: int | None, check_inputs: bool = False, **extra):
    torch.manual_seed(0)
    model = torch.nn.Linear(D, K)
    with torch.no_grad():
        model.weight.mul_(4)  # confident predictions: some samples correct (OLS), clear wrong classes (slots)
    extra.update({"top_n": top_n} if top_n else {})
    loss = make_loss(name, K, check_inputs=check_inputs, **extra).train()
    if loss.requires_optimizer:
        with torch.no_grad():
            loss.logits.normal_()
    return (model, loss), copy.deepcopy((model, loss))


def _step(model: torch.nn.Module, loss: hf_labelsmooth.RelationLoss, x: torch.Tensor,
          t: torch.Tensor) -> torch.Tensor:
    return loss(model(x), t)


def _run(eager, compiled, step_fn, kind: str, steps: int = 3) -> None:
    """Run `steps` SGD steps on both twins and compare loss, gradients and buffers after each."""
    opts = [torch.optim.SGD([*m.parameters(), *f.parameters()], lr=0.5) for m, f in (eager, compiled)]
    for step in range(steps):
        x, t = _targets(step, kind)
        values = []
        for (model, loss), fn, opt in zip((eager, compiled), (_step, step_fn), opts):
            value = fn(model, loss, x, t)
            value.backward()
            values.append(value.detach())
        torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-6)
        _compare_state(eager, compiled)
        for opt in opts:
            opt.step()
            opt.zero_grad()
    for _, loss in (eager, compiled):
        loss.end_epoch()
    _compare_state(eager, compiled)


def _compare_state(eager, compiled) -> None:
    for module_e, module_c in zip(eager, compiled):
        for (name, p_e), p_c in zip(module_e.named_parameters(), module_c.parameters()):
            assert (p_e.grad is None) == (p_c.grad is None), name
            if p_e.grad is not None:
                torch.testing.assert_close(p_c.grad, p_e.grad, rtol=1e-5, atol=1e-6, msg=name)
            torch.testing.assert_close(p_c, p_e, rtol=1e-5, atol=1e-6, msg=name)
        for (name, b_e), b_c in zip(module_e.named_buffers(), module_c.buffers()):
            torch.testing.assert_close(b_c, b_e, rtol=1e-5, atol=1e-6, msg=name)


TOKEN_CASES = [("ls", None), ("ols", None), ("ols", TOP_N), ("lspp", TOP_N)]  # base masking; masked statistics


@pytest.mark.parametrize(("name", "top_n", "kind"), [(n, t, k) for n, t in CASES for k in ("hard", "soft")]
                         + [(n, t, "tokens") for n, t in TOKEN_CASES])
def test_fullgraph_step_equals_eager(name: str, top_n: int | None, kind: str) -> None:
    """fullgraph=True raises on any graph break; no recompilation after the first step."""
    eager, compiled = _twins(name, top_n)
    step_fn = torch.compile(_step, fullgraph=True, backend="aot_eager")
    x, t = _targets(0, kind)
    step_fn(*compiled, x, t)  # warm-up call compiles; then every step must reuse the graph
    compiled[1].load_state_dict(eager[1].state_dict())
    with torch._dynamo.config.patch(error_on_recompile=True):
        _run(eager, compiled, step_fn, kind)


@pytest.mark.parametrize(("name", "top_n"), [("ols", None), ("lls", TOP_N)])
def test_checks_are_the_only_graph_breaks(name: str, top_n: int | None) -> None:
    """check_inputs=True: the input, matrix-row and loss checks break the graph; nothing else does."""
    eager, compiled = _twins(name, top_n, check_inputs=True)
    x, t = _targets(0, "hard")
    explained = torch._dynamo.explain(_step)(*copy.deepcopy(compiled), x, t)
    reads_matrix = name == "ols"  # OLS reads rows of a stored matrix, checked as it reads them (`checked_rows`)
    sites = [tuple((Path(f.filename).name, f.name) for f in reason.user_stack[-2:])
             for reason in explained.break_reasons]  # each a call of an `eager_only` function
    assert sites.count((("base.py", "forward"), ("eager.py", "wrapper"))) == 2  # input checks, loss check
    assert set(sites) - {(("base.py", "forward"), ("eager.py", "wrapper"))} == (
        {(("checks.py", "checked_rows"), ("eager.py", "wrapper"))} if reads_matrix else set())
    torch._dynamo.reset()
    _run(eager, compiled, torch.compile(_step, backend="aot_eager"), "hard")
    with pytest.raises(ValueError, match="Expected labels in"):
        torch.compile(_step, backend="aot_eager")(*compiled, x, torch.full((B,), K))


@pytest.mark.parametrize(("name", "top_n", "period"), [("ols", None, "update_every"), ("ols", TOP_N, "update_every"),
                                                     ("lspp", TOP_N, "refresh_every")])
def test_period_inside_the_loss_compiles_with_one_break(name: str, top_n: int | None, period: str) -> None:
    """A period counted by the loss (`update_every`, `refresh_every`) swaps in a disabled region; for one graph,
    leave it unset and call `end_epoch()` from the loop (the Trainer callback does)."""
    eager, compiled = _twins(name, top_n, **{period: 2})
    loss = compiled[1]
    owner, method = (loss, "swap") if name == "ols" else (loss.rows, "refresh")  # LS++: its top-N storage refreshes
    calls = []
    original = getattr(owner, method)
    setattr(owner, method, lambda: (calls.append(1), original()))
    _run(eager, compiled, torch.compile(_step, backend="aot_eager"), "hard", steps=4)
    assert len(calls) == 2  # after steps 2 and 4 (end_epoch leaves a batch period alone)


@pytest.mark.slow
def test_inductor_fused_losses_in_one_graph() -> None:
    """The default backend on the losses with hand-written kernels (ls, ols, lspp, lls; dense and top_n), class ids
    and Mixup targets, all in one fullgraph function: one compilation (minutes on 2 cores, seconds from its cache)."""
    pairs = [_twins(name, top_n) for name, top_n in CASES if name in ("ls", "ols", "lspp", "lls")]
    eager, compiled = [p[0] for p in pairs], [p[1] for p in pairs]

    def step_all(twins, x, y, soft):
        return torch.stack([loss(model(x), t) for model, loss in twins for t in (y, soft)])

    step_fn = torch.compile(step_all, fullgraph=True)
    opts = [torch.optim.SGD([p for m, f in twins for p in (*m.parameters(), *f.parameters())], lr=0.5)
            for twins in (eager, compiled)]
    for step in range(2):
        (x, y), (_, soft) = _targets(step, "hard"), _targets(step, "soft")
        values = [fn(twins, x, y, soft) for fn, twins in ((step_all, eager), (step_fn, compiled))]
        for value in values:
            value.sum().backward()
        torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-6)
        for pair_e, pair_c in zip(eager, compiled):
            _compare_state(pair_e, pair_c)
        for opt in opts:
            opt.step()
            opt.zero_grad()
