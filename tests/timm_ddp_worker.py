"""torchrun entry point for the timm tests: runs ``train_timm.main`` once per config (configs split by ``--next``).

Usage: ``torchrun --nproc_per_node 2 tests/timm_ddp_worker.py RESULT_DIR ARGS... [--next ARGS...]``. Each rank
writes ``RESULT_DIR/run{i}-rank{r}.json`` with the world size and rank it trained with.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch.distributed

SCRIPT = Path(__file__).resolve().parents[1] / "train_scripts" / "train_timm.py"


def load_script():
    """Import train_scripts/train_timm.py as a module (its private helpers sit beside it)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_timm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    result_dir, rest = Path(argv[0]), argv[1:]
    configs, current = [], []
    for item in rest + ["--next"]:
        if item == "--next":
            configs.append(current)
            current = []
        else:
            current.append(item)
    script = load_script()
    torch.distributed.init_process_group("gloo")  # shared by every run (a group cannot be re-created under torchrun)
    for i, config in enumerate(configs):
        result = script.main(config)
        info = {"world_size": result["world_size"], "rank": result["rank"], "top1": result["metrics"]["top1"]}
        (result_dir / f"run{i}-rank{result['rank']}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1:])
    torch.distributed.destroy_process_group()
