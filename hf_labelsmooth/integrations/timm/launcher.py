"""``hf-labelsmooth timm-train``: run timm's own, unmodified ``train.py`` with a class-relation loss.

    hf-labelsmooth timm-train path/to/train.py --loss-type lls --ls-alpha 0.1 <train.py's own flags>
    torchrun --nproc_per_node 2 --no-python hf-labelsmooth timm-train path/to/train.py --loss-type lls ...

Like ``accelerate launch``, the launcher takes its own flags (`options`; before or after the script path, exact names
only) and hands every other flag to the script, which runs as ``__main__`` in this process (`runpy`) after the loss
has been installed into timm (`hooks` lists where and why). train.py keeps its flags, checkpoints and output folder;
the launcher adds the relation loss, its optimizer group, the epoch-end hook and, on rank 0, the final matrix and
card in ``<train.py's output folder>/relation_matrix``. Importing this module does not import timm.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Sequence

from .options import LaunchError, LaunchOptions, add_launcher_arguments, split_launcher_args
from .result import LaunchResult

__all__ = ["LaunchError", "LaunchOptions", "LaunchResult", "add_launcher_arguments", "launch", "split_launcher_args"]


def launch(script: str | Path, script_args: Sequence[str], options: LaunchOptions | None = None) -> LaunchResult:
    """Run `script` (timm's train.py) as ``__main__`` with `script_args` and the relation loss of `options` installed.

    Args:
        script: Path of train.py.
        script_args: train.py's flags; launcher flags among them are taken out (`split_launcher_args`).
        options: Launcher flags given apart from `script_args`.

    Returns:
        The `LaunchResult` (the relation files are written on rank 0 only, after train.py returns).

    Raises:
        LaunchError: No relation loss, a script that is not timm's train.py, a device this machine lacks, or a
            flag that contradicts the relation loss, before any training.
        FileNotFoundError: `script` does not exist.
        ImportError: timm is not installed (the ``[timm]`` extra).
    """
    try:
        from .entry import check_entry
        from .hooks import LaunchState, installed
        from .script_args import script_loss_type, with_default_smoothing
    except ImportError as err:
        raise ImportError(f"Expected timm for hf-labelsmooth timm-train but got: {err}. Install it with pip install "
                          "'hf_labelsmooth[timm]'.") from err

    options, argv = split_launcher_args(script_args, options)
    requested = options.loss_type or script_loss_type(argv)
    options.check(requested)
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"Expected the path of timm's train.py but got {str(script)!r} (no such file). It "
                                "is not in the timm wheel: take it from a clone of "
                                "github.com/huggingface/pytorch-image-models.")
    check_entry(path, requested)  # a relation loss, a script the hooks reach, a device this machine has
    state = LaunchState(options)
    script_argv = with_default_smoothing(argv, requested)
    if script_argv != argv:  # logged once train.py has set up logging
        state.notes.append("train.py's --smoothing (default 0.1) is set to 0: the relation loss smooths with "
                           "--ls-alpha.")
    with installed(state):
        run_script(path, script_argv)
    if state.args is not None and state.task is None and state.loss_type is not None:
        raise LaunchError(f"Expected {path} to build timm.task.ClassificationTask, where the launcher puts the "
                          f"{state.loss_type} loss, but it trained without one: no relation loss was used and no "
                          "matrix was written. Use timm's train.py (timm >= 1.0.31).")
    return state.finish()


def run_script(path: Path, argv: list[str]) -> None:
    """``python path argv...`` in this process: ``sys.argv`` and ``sys.path[0]`` as Python sets them, then restored."""
    saved_argv = sys.argv
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as err:
        if err.code not in (0, None):
            raise
    finally:
        sys.argv = saved_argv
        sys.path.remove(str(path.resolve().parent))
