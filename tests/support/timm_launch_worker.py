"""torchrun entry point of the launcher tests: `launch` timm's train.py, then record what this rank ended with.

Usage: ``torchrun --nproc_per_node 2 tests/support/timm_launch_worker.py RESULT_DIR TRAIN_PY ARGS...``. Each rank writes
``RESULT_DIR/rank{r}.json`` (the world size and rank train.py trained with) and ``rank{r}.safetensors`` (its matrix).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from hf_labelsmooth.integrations.timm.launcher import launch


def main(argv: list[str]) -> None:
    result_dir, train_py, args = Path(argv[0]), argv[1], argv[2:]
    result = launch(train_py, args)
    matrix = result.task.loss.relation_matrix().contiguous()
    save_file({"matrix": matrix}, str(result_dir / f"rank{result.rank}.safetensors"))
    info = {"world_size": result.world_size, "rank": result.rank}
    (result_dir / f"rank{result.rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1:])
