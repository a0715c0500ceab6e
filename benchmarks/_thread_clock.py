"""Run timm's train.py (``python _thread_clock.py TRAIN_PY ...``) or the launcher (``python _thread_clock.py -m
hf_labelsmooth.cli timm-train TRAIN_PY ...``) with ``time.time`` reading this thread's CPU time.

train.py times each step with ``time.time()`` (its logged ``Time:``). With ``--workers 0`` and one OMP thread the
main thread does all of a step's work (data, forward, loss, backward, optimizer), so its CPU time is the step's
cost without the waits of a busy shared machine (the Trainer section measures `time.thread_time` too). train.py
itself is run unmodified, as ``__main__``, exactly as ``python TRAIN_PY`` runs it.
"""
from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path


def main() -> None:
    time.time = time.thread_time  # train.py's logged per-step durations become CPU time of the step's thread
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        return
    script = Path(sys.argv[1]).resolve()
    sys.argv = sys.argv[1:]
    sys.path[0] = str(script.parent)  # as `python TRAIN_PY` sets it
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
