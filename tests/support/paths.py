"""Where the tests find the project's folders, the support scripts they run by path, and timm's train.py."""
from __future__ import annotations

import os
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
ROOT = SUPPORT.parents[1]
SCRIPTS = ROOT / "train_scripts"
CONFIGS = SCRIPTS / "configs"  # the from-scratch configs of the README
BENCHMARKS = ROOT / "benchmarks"


def subprocess_env(*paths: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a child Python: `paths`, then this checkout, then the PYTHONPATH it had (a
    worktree's too), plus the `extra` variables."""
    path = os.pathsep.join(p for p in (*map(str, paths), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def timm_train_py() -> Path | None:
    """timm's unmodified train.py (``$TIMM_TRAIN_PY``, else ``shared/timm-train/train.py`` beside a parent folder)."""
    if os.environ.get("TIMM_TRAIN_PY"):
        return Path(os.environ["TIMM_TRAIN_PY"])
    for parent in SUPPORT.parents:
        candidate = parent / "shared" / "timm-train" / "train.py"
        if candidate.is_file():
            return candidate
    return None
