"""The device check: correctness and speed of the losses on a CUDA GPU, in at most 5 minutes (`device_check.sh`).

Parts, in order: (1) every fused hard-label path and every fused soft (Mixup) path of ls/ols/lspp/lls (dense and
``top_n``), relation_prior and soft_kl, with float32 / bf16 / fp16 autocast logits, against a float64 CPU reference
(loss and logit gradient); (2) one training step per registered loss (dense and ``top_n``, class ids and Mixup, the
default checks on) under ``torch.cuda.set_sync_debug_mode("error")``: zero host syncs; (3) the loss test files on
CUDA (``pytest -k cuda``: they are device-parametrised), torch.compile on CUDA included; (4) ``loss_speed.py --device
cuda``. Results go to ``benchmarks/results_gpu.md``. Without a GPU it says so, runs
part (1) on the CPU (the CPU half) and exits 0 without writing the file.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hf_labelsmooth import create_loss, get_loss_class, list_losses  # noqa: E402
from hf_labelsmooth._io import atomic_write_bytes  # noqa: E402

TINY = torch.finfo(torch.float32).tiny
CASES = [("ls", None), ("ols", None), ("lspp", None), ("lls", None), ("ols", 4), ("lspp", 4), ("lls", 4),
         ("relation_prior", None), ("soft_kl", None)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOLERANCE = {"float32": (1e-5, 1e-5), "bfloat16": (1e-5, 2e-2), "float16": (1e-5, 3e-3)}  # (loss, gradient)
LOSS_FILES = ["test_losses_common.py", "test_losses_formulas.py", "test_fused_ce.py", "test_fused_lspp.py",
              "test_fused_lls.py", "test_sparse.py", "test_ols_updates.py", "test_relation_prior.py",
              "test_grouped_merge.py", "test_validation.py", "test_compile.py"]


def _prepared_loss(name: str, top_n: int | None, k: int, device: str) -> torch.nn.Module:
    """A loss in a non-trivial state: random relation logits, or OLS rows learned from a few batches."""
    options = {"top_n": top_n} if top_n else {}
    if name == "relation_prior":
        options["matrix"] = torch.randn(k, k).mul(2).softmax(dim=-1)
    loss = create_loss(name, k, **options).to(device).train()
    with torch.no_grad():
        for p in loss.parameters():
            p.normal_(0, 1.5)
    if name == "ols":
        for _ in range(3):
            y = torch.randint(0, k, (64,), device=device)
            loss(torch.randn(64, k, device=device) + 6 * F.one_hot(y, k), y)
        loss.end_epoch()
    return loss


def _reference(name: str, alpha: float, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The batch-mean loss in float64 (SPEC.md), from logits z and full targets t = (1-α)·s + α·s @ R."""
    log_p = z.log_softmax(-1)
    if name in ("ls", "ols", "relation_prior"):
        return -(t * log_p).sum(-1).mean()
    if name == "soft_kl":
        return (torch.special.xlogy(t, t) - t * log_p).sum(-1).mean()
    log_t = t.clamp_min(TINY).log()
    if name == "lspp":  # stop-gradients: only the network term reaches z
        return ((-(t * log_p).sum(-1) - (log_p.exp().detach() * log_t).sum(-1)) / 2).mean()
    return (((t * (log_t - log_p)).sum(-1) + (log_p.exp() * (log_p - log_t)).sum(-1)) / 2).mean()


def check_case(name: str, top_n: int | None, k: int, kind: str, dtype: str, device: str) -> dict[str, object]:
    """Loss and logit-gradient errors of one case on `device` against the float64 CPU reference."""
    torch.manual_seed(k)
    loss = _prepared_loss(name, top_n, k, device)
    x, w = torch.randn(64, 16, device=device), torch.randn(16, k, device=device) / 2
    with torch.autocast(device, dtype=DTYPES[dtype], enabled=dtype != "float32"):
        z = (x @ w).detach().requires_grad_()  # logits in the autocast dtype, as a model head gives them
        y = torch.randint(0, k, (64,), device=device)
        target = y if kind == "hard" else 0.6 * F.one_hot(y, k) + 0.4 * F.one_hot(y.roll(1), k).float()
        value = loss(z, target)
    value.backward()
    value = value.item()
    r = loss.relation_matrix().double().cpu()
    s = F.one_hot(y, k).double().cpu() if kind == "hard" else target.double().cpu()
    z64 = z.detach().double().cpu().requires_grad_()
    expected = _reference(name, loss.alpha, z64, (1 - loss.alpha) * s + loss.alpha * s @ r)
    expected.backward()
    loss_err = abs(value - expected.item()) / abs(expected.item())
    grad_err = float((z.grad.double().cpu() - z64.grad).abs().max() / z64.grad.abs().max())
    tol = TOLERANCE[dtype]
    return {"loss": name + (f"/{top_n}" if top_n else ""), "K": k, "targets": kind, "dtype": dtype,
            "loss_err": loss_err, "grad_err": grad_err, "ok": loss_err <= tol[0] and grad_err <= tol[1]}


def numeric_checks(device: str) -> list[dict[str, object]]:
    """Every case × K ∈ {37, 2500} (both sides of the size-dependent kernel choices) × targets × dtypes."""
    return [check_case(name, top_n, k, kind, dtype, device) for name, top_n in CASES for k in (37, 2500)
            for kind in ("hard", "soft") for dtype in DTYPES]


def numeric_table(rows: list[dict[str, object]], device: str) -> str:
    lines = [f"| loss | K | targets | dtype | rel. loss error | rel. max gradient error | ok ({device}) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['loss']} | {r['K']} | {r['targets']} | {r['dtype']} | {r['loss_err']:.1e} | {r['grad_err']:.1e} "
              f"| {'yes' if r['ok'] else '**NO**'} |" for r in rows]
    return "\n".join(lines)


def sync_free_steps(device: str) -> list[dict[str, object]]:
    """One forward + backward + SGD step of every registered loss (dense and top-N, class ids and Mixup, default
    checks) under ``torch.cuda.set_sync_debug_mode("error")``: a host sync raises and is reported."""
    rows = []
    for name in list_losses():
        for top_n in ([None, 4] if get_loss_class(name).supports_top_n else [None]):
            for kind in ("hard", "soft"):
                loss = _prepared_loss(name, top_n, 37, device)
                opt = torch.optim.SGD(loss.parameters(), lr=0.1) if loss.requires_optimizer else None
                z = torch.randn(64, 37, device=device, requires_grad=True)
                y = torch.randint(0, 37, (64,), device=device)
                target = y if kind == "hard" else 0.6 * F.one_hot(y, 37) + 0.4 * F.one_hot(y.roll(1), 37).float()
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
                try:
                    loss(z, target).backward()
                    if opt is not None:
                        opt.step()
                    error = ""
                except RuntimeError as exc:
                    error = str(exc).strip().splitlines()[0][:100]
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                rows.append({"loss": name + (f"/{top_n}" if top_n else ""), "targets": kind, "error": error})
    return rows


def sync_table(rows: list[dict[str, object]]) -> str:
    lines = ["| loss | targets | host syncs |", "|---|---|---|"]
    lines += [f"| {r['loss']} | {r['targets']} | {'none' if not r['error'] else '**' + str(r['error']) + '**'} |"
              for r in rows]
    return "\n".join(lines)


def _run(cmd: list[str], timeout: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        return 124, f"timed out after {timeout} s\n{(error.stdout or b'')[-2000:]!r}"
    return proc.returncode, proc.stdout + proc.stderr


def gpu_half(sections: list[str], timings: dict[str, float]) -> bool:
    """Loss tests on CUDA and loss_speed on CUDA; appends their reports; True when both passed."""
    start = time.perf_counter()
    rc_tests, out = _run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider",
                          *[f"tests/losses/{f}" for f in LOSS_FILES]], timeout=150)
    timings["loss tests on CUDA"] = time.perf_counter() - start
    sections += ["## Loss tests on CUDA (`pytest -k cuda`, torch.compile included)", "", "```",
                 "\n".join(out.strip().splitlines()[-15:]), "```", ""]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        speed = Path(tmp) / "speed.md"
        rc_speed, out = _run([sys.executable, "benchmarks/loss_speed.py", "--device", "cuda", "--rounds", "10",
                              "--compile-classes", "10000", "--out", str(speed)], timeout=120)
        sections += [speed.read_text().replace("# Loss speed", "## Loss speed", 1) if speed.is_file()
                     else f"## Loss speed on CUDA: failed\n\n```\n{out[-3000:]}\n```\n"]
    timings["loss_speed --device cuda"] = time.perf_counter() - start
    start = time.perf_counter()
    rc_deepspeed, out = _run([sys.executable, "benchmarks/device_check_deepspeed.py"], timeout=180)
    sections.append(out.strip() + "\n")  # the learned matrix's optimizer under ZeRO-2 (skipped without deepspeed)
    timings["DeepSpeed case"] = time.perf_counter() - start
    return rc_tests == 0 and rc_speed == 0 and rc_deepspeed == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_gpu.md")
    args = parser.parse_args()
    start, timings = time.perf_counter(), {}
    cpu_rows = numeric_checks("cpu")
    timings["numeric checks, CPU"] = time.perf_counter() - start
    print(numeric_table(cpu_rows, "cpu"))
    if not torch.cuda.is_available():
        print(f"No CUDA GPU: ran the CPU half only ({time.perf_counter() - start:.0f} s); the GPU half (autocast and "
              "reference checks on CUDA, training steps under the sync debug mode, loss tests and torch.compile on "
              f"CUDA, loss_speed --device cuda) is skipped "
              f"and {args.out.name} is not written.")
        return 0 if all(r["ok"] for r in cpu_rows) else 1
    step = time.perf_counter()
    gpu_rows = numeric_checks("cuda")
    timings["numeric checks, CUDA"] = time.perf_counter() - step
    step = time.perf_counter()
    sync_rows = sync_free_steps("cuda")
    timings["training steps under sync debug mode"] = time.perf_counter() - step
    sections = [f"# Device check: {torch.cuda.get_device_name()}, torch {torch.__version__}", "",
                "## Fused hard-label and soft paths vs a float64 CPU reference", "",
                numeric_table(gpu_rows, "cuda"), "",
                '## One training step per loss under `torch.cuda.set_sync_debug_mode("error")`', "",
                sync_table(sync_rows), ""]
    passed = gpu_half(sections, timings) and all(r["ok"] for r in cpu_rows + gpu_rows)
    passed = passed and not any(r["error"] for r in sync_rows)
    total = time.perf_counter() - start
    sections += ["## Time", "", *[f"- {k}: {v:.0f} s" for k, v in timings.items()], f"- total: {total:.0f} s",
                 "", f"Result: {'passed' if passed else 'FAILED'}.", ""]
    atomic_write_bytes(args.out, "\n".join(sections).encode())
    print("\n".join(sections))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
