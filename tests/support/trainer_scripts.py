"""Run a train_scripts/run_*_classification.py script in-process and read back what it wrote."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch

from hf_labelsmooth import ClassRelationMatrix
from tests.support.paths import SCRIPTS

COMMON = ["--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "True", "--seed", "0",
          "--logging_steps", "1", "--do_train", "--do_eval", "--log_level", "warning"]


def run_script(name: str, argv: list[str], monkeypatch: Any) -> dict[str, Any]:
    """Run `train_scripts/{name}.py` with `argv` (+ COMMON); returns eval metrics, losses per epoch and the matrix."""
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [name, *argv, *COMMON])
    metrics = module.main()
    out = Path(argv[argv.index("--output_dir") + 1])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses: dict[int, list[float]] = {}
    for entry in history:
        if "loss" in entry:
            losses.setdefault(int(-(-entry["epoch"] // 1)), []).append(entry["loss"])
    matrix, names = None, None
    if (out / "relation_matrix" / "config.json").is_file():
        saved = ClassRelationMatrix.from_pretrained(out / "relation_matrix")
        matrix, names = saved.matrix, saved.label_names
    return {"metrics": metrics, "losses": losses, "matrix": matrix, "label_names": names, "out": out}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def check_method_result(method: str, result: dict[str, Any], num_classes: int) -> None:
    """Loss of the last epoch below the first; the matrix moved as the method says."""
    epochs = sorted(result["losses"])
    first, last = mean(result["losses"][epochs[0]]), mean(result["losses"][epochs[-1]])
    assert last < first, f"{method}: loss did not decrease {result['losses']}"
    assert 0.0 <= result["metrics"]["eval_accuracy"] <= 1.0
    assert {"eval_nll", "eval_ece"} <= set(result["metrics"])  # comparable across methods, unlike eval_loss
    matrix = result["matrix"]
    if method in ("ce", "ls"):  # nothing learned, nothing saved
        assert matrix is None and not (result["out"] / "relation_matrix").exists()
        return
    k = num_classes
    assert matrix.shape == (k, k) and torch.allclose(matrix.sum(-1), torch.ones(k), atol=1e-5)
    assert len(result["label_names"]) == k
    uniform = torch.full((k, k), 1.0 / k)
    if method == "lspp":
        assert torch.all(matrix.diagonal() == 0)
        assert (matrix - (1 - torch.eye(k)) / (k - 1)).abs().max() > 1e-4
    else:  # ols: averaged correct predictions put mass on the diagonal; lls: learned away from uniform
        assert (matrix - uniform).abs().max() > 1e-4
        if method == "ols":
            assert matrix.diagonal().mean() > 1.0 / k
