"""Run the training scripts and the CLI as a user does (python, torchrun, accelerate launch) in subprocesses.

Every child gets this checkout first on ``PYTHONPATH`` (a worktree's code, not the venv's editable install), one
OMP thread, a fresh free port, an empty ``HF_HOME`` (no user accelerate config, no Hub token) and no Hub access.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import CONFIGS, SCRIPTS, subprocess_env
from tests.support.ports import free_port

BIN = Path(sys.executable).parent
_LAUNCH_VARIABLES = ("ACCELERATE_", "HF_", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_")


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a launched child (see the module docstring)."""
    env = {k: v for k, v in subprocess_env().items() if not k.startswith(_LAUNCH_VARIABLES)}
    env.update(OMP_NUM_THREADS="1", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


@dataclass
class Run:
    """A finished child process: exit code and output."""

    returncode: int
    stdout: str
    stderr: str

    def error_lines(self, prog: str) -> list[str]:
        """The ``prog: error: ...`` lines on stderr (a launcher may quote them again in its own report)."""
        return [line for line in self.stderr.splitlines() if line.startswith(f"{prog}: error: ")]

    @property
    def our_traceback(self) -> bool:
        """Whether stderr holds a traceback through this library or the scripts (a launcher's own may follow)."""
        return any(line.lstrip().startswith('File "') and ("hf_labelsmooth" in line or "train_scripts" in line)
                   for line in self.stderr.splitlines())


def run(cmd: list[str], home: Path, timeout: int = 1800, **env: str) -> Run:  # a hang guard: busy CI is slow
    result = subprocess.run(cmd, env=child_env(home, **env), capture_output=True, text=True, timeout=timeout,
                            cwd=str(home))
    return Run(result.returncode, result.stdout, result.stderr)


def launcher(kind: str) -> list[str]:
    """The command that starts a script: ``python``, ``torchrun`` (2 processes) or ``accelerate`` variants."""
    port = str(free_port())
    if kind == "python":
        return [sys.executable]
    if kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                "127.0.0.1", "--master_port", port]
    accelerate = [str(BIN / "accelerate"), "launch", "--num_processes", "2", "--main_process_port", port,
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return {"accelerate": accelerate, "accelerate --cpu": [*accelerate, "--cpu"],
            "accelerate --multi_gpu": [*accelerate, "--multi_gpu"]}[kind]


def image_script_args(data: Path, out: Path, *extra: str) -> list[str]:
    """The README's digits command, shrunk: 1 epoch, per-device batch 16, no checkpoints."""
    return [str(SCRIPTS / "run_image_classification.py"), "--config_name", str(CONFIGS / "convnext-digits"),
            "--dataset_name", str(data), "--augment", "False", "--label_smoothing_method", "ols",
            "--output_dir", str(out), "--do_train", "--num_train_epochs", "1", "--per_device_train_batch_size", "16",
            "--learning_rate", "3e-3", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "True",
            "--seed", "0", "--log_level", "warning", "--log_level_replica", "warning", *extra]


def trainer_state(out: Path) -> dict[str, Any]:
    return json.loads((out / "trainer_state.json").read_text())
