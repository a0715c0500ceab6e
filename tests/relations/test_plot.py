"""Heatmaps never touch the user's matplotlib state (backend, pyplot figures)."""
from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
import matplotlib
matplotlib.use("svg")
from hf_labelsmooth import ClassRelationMatrix, create_loss
from hf_labelsmooth.cli import main
ClassRelationMatrix.from_loss(create_loss("lls", 3), ["a", "b", "c"]).save_pretrained(sys.argv[1])
main(["show", sys.argv[1], "--png", sys.argv[1] + "/again.png"])
print("STATE", matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_plotting_keeps_the_users_backend_and_never_imports_pyplot(tmp_path):
    env = {**os.environ, "MPLBACKEND": "pdf"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "STATE svg False" in result.stdout
    assert (tmp_path / "relation_matrix.png").stat().st_size > 1000 and (tmp_path / "again.png").is_file()
