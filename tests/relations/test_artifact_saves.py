"""A save is one unit: killed at any point it leaves the old or the new artifact, never a mix; no temp files stay."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from hf_labelsmooth import ClassRelationMatrix
from hf_labelsmooth.cli import main
from hf_labelsmooth.relations.plot import plot_relation_matrix
from tests.support.paths import subprocess_env

ARTIFACT = ["README.md", "config.json", "relation_matrix.png", "relation_matrix.safetensors"]
MATH_NAMES = ["price_$1_to_$2", "$x^$", "a|b", r"\alpha"]


def version(tag: str, k: int = 4, seed: int = 0) -> ClassRelationMatrix:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.softmax(torch.randn(k, k, generator=generator), dim=-1)
    return ClassRelationMatrix(matrix, [f"{tag}{i}" for i in range(k)], method="ols", dataset=tag)


def assert_is(loaded: ClassRelationMatrix, expected: ClassRelationMatrix) -> None:
    assert loaded.label_names == expected.label_names and torch.equal(loaded.matrix, expected.matrix)


def test_config_records_the_sha256_of_the_tensors(tmp_path):
    version("a").save_pretrained(tmp_path, card=False)
    config = json.loads((tmp_path / "config.json").read_text())
    digest = hashlib.sha256((tmp_path / "relation_matrix.safetensors").read_bytes()).hexdigest()
    assert config["sha256"] == {"relation_matrix.safetensors": digest}


def test_tensors_of_another_save_are_refused_with_the_fix(tmp_path):
    version("a").save_pretrained(tmp_path / "a", card=False)
    version("b", seed=1).save_pretrained(tmp_path / "b", card=False)
    os.replace(tmp_path / "b" / "relation_matrix.safetensors", tmp_path / "a" / "relation_matrix.safetensors")
    with pytest.raises(ValueError, match="sha256 recorded in config.json .* mixes files of two saves.*Re-save"):
        ClassRelationMatrix.from_pretrained(tmp_path / "a")


def killed_save(folder, new: ClassRelationMatrix, when) -> None:
    """Save `new` in a forked child that dies (os._exit: no cleanup, like SIGKILL) when `when(step, path)` says so."""
    from hf_labelsmooth._io import commit

    pid = os.fork()
    if pid == 0:  # child
        try:
            real_write, real_pending, real_replace = commit.write_file, commit.write_pending, commit.os.replace

            def write_file(path, data):  # dies with its temporary file half written
                if when("write", path):
                    path.with_name(f".{path.name}.half.tmp").write_bytes(data[: len(data) // 2])
                    os._exit(0)
                real_write(path, data)

            def write_pending(path, data):
                if when("write", path):
                    path.write_bytes(data[: len(data) // 2])
                    os._exit(0)
                real_pending(path, data)

            def replace(src, dst):
                if when("replace", dst):
                    os._exit(0)
                real_replace(src, dst)

            commit.write_file, commit.write_pending, commit.os.replace = write_file, write_pending, replace
            new.save_pretrained(folder)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("step, name, survivor", [
    ("write", ".relation_matrix.safetensors.", "old"),  # new tensors half written under their pending name
    ("write", "config.json", "old"),  # tensors pending, config.json half written: not committed
    ("replace", "relation_matrix.safetensors", "new"),  # committed, tensors not yet renamed into place
    ("write", "README.md", "new"),  # committed, card half written
])
def test_a_save_killed_at_each_step_leaves_old_or_new_and_the_next_save_cleans_up(tmp_path, step, name, survivor):
    old, new, third = version("old"), version("new", k=5, seed=1), version("third", seed=2)  # K changes too
    old.save_pretrained(tmp_path)
    killed_save(tmp_path, new, lambda s, path: s == step and path.name.startswith(name))
    assert sorted(os.listdir(tmp_path)) != ARTIFACT  # the kill left something behind
    assert_is(ClassRelationMatrix.from_pretrained(tmp_path), {"old": old, "new": new}[survivor])
    third.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ARTIFACT
    assert_is(ClassRelationMatrix.from_pretrained(tmp_path), third)
    assert "third0" in (tmp_path / "README.md").read_text()


def test_stale_temp_files_are_removed_and_other_files_kept(tmp_path):
    version("a").save_pretrained(tmp_path)
    stale = [".relation_matrix.safetensors.k2j4.tmp", ".config.json.x1.tmp", ".README.md.q.tmp",
             ".relation_matrix.png.zz.tmp", ".relation_matrix.safetensors.0123456789abcdef.pending"]
    mine = ["notes.txt", ".hidden", ".model.safetensors.abc.tmp"]  # not ours: left alone
    for name in stale + mine:
        (tmp_path / name).write_bytes(b"x" * 100)
    version("b", seed=1).save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(ARTIFACT + mine)


def test_plot_and_loss_state_writes_remove_their_stale_temp_files(tmp_path):
    from hf_labelsmooth import create_loss
    from hf_labelsmooth.integrations.transformers.checkpoint import save_loss_state

    (tmp_path / ".heat.png.abc123.tmp").write_bytes(b"partial")
    (tmp_path / ".relation_loss.safetensors.def.tmp").write_bytes(b"partial")
    plot_relation_matrix(version("a").matrix, path=tmp_path / "heat.png")
    save_loss_state(create_loss("ols", 4), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["heat.png", "relation_loss.safetensors"]


def test_math_like_label_names_are_drawn_and_written_literally(tmp_path, capsys):
    crm = ClassRelationMatrix(version("a").matrix, MATH_NAMES, method="lls")
    crm.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "relation_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ticks = [t.get_text() for t in crm.plot().axes[0].get_yticklabels()]
    assert ticks == MATH_NAMES
    card = (tmp_path / "m" / "README.md").read_text()
    assert r"| price\_\$1\_to\_\$2 |" in card and r"| a\|b |" in card and r"| \\alpha |" in card
    assert ClassRelationMatrix.from_pretrained(tmp_path / "m").label_names == MATH_NAMES
    assert main(["show", str(tmp_path / "m"), "--png", str(tmp_path / "heat.png")]) == 0
    assert "price_$1_to_$2" in capsys.readouterr().out and (tmp_path / "heat.png").stat().st_size > 1000


def test_trainer_save_model_with_math_like_label_names(tmp_path):
    from tests.support.trainer_digits import DigitsDataset, digits_args, tiny_model

    from hf_labelsmooth import LabelSmoothingTrainer

    model = tiny_model()
    names = MATH_NAMES + [f"${i}$" for i in range(6)]
    model.config.id2label = dict(enumerate(names))
    trainer = LabelSmoothingTrainer(model=model, args=digits_args(str(tmp_path), "lls", 8),
                                    train_dataset=DigitsDataset(8))
    trainer.save_model(str(tmp_path / "final"))
    saved = ClassRelationMatrix.from_pretrained(tmp_path / "final")
    assert saved.label_names == names and (tmp_path / "final" / "relation_matrix" / "relation_matrix.png").is_file()


WORKER = """
import os, sys, time
from tests.relations.test_artifact_saves import version
versions = [version("a", 4000, 0), version("b", 4000, 1)]
for _ in sys.stdin:  # one forked saver per line: no import and set-up cost per kill
    pid = os.fork()
    if pid == 0:
        for i in range(10 ** 6):
            start = time.perf_counter()
            versions[i % 2].save_pretrained(sys.argv[1], card=False)
            print(f"saved {time.perf_counter() - start:.3f}", flush=True)
    print(f"child {pid}", flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def read_until(stream, prefix: str) -> str:
    line = stream.readline()
    while not line.startswith(prefix):
        assert line, f"worker ended before {prefix!r}"
        line = stream.readline()
    return line


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_sigkill_during_save_loop_never_mixes_two_saves(tmp_path):
    """Real SIGKILLs at random times during K=4000 saves: the folder always loads as one of the two saves."""
    folder, rng = tmp_path / "m", random.Random(0)
    expected = [version("a", 4000, 0), version("b", 4000, 1)]
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(folder)],
                              env=subprocess_env(OMP_NUM_THREADS="1"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    left_behind = 0
    try:
        for _ in range(20):
            worker.stdin.write("go\n")
            worker.stdin.flush()
            saver = int(read_until(worker.stdout, "child").split()[1])
            duration = float(read_until(worker.stdout, "saved").split()[1])  # a full save is in the folder
            time.sleep(rng.uniform(0, 1.5 * duration))
            os.kill(saver, signal.SIGKILL)
            read_until(worker.stdout, "reaped")
            left_behind += sorted(os.listdir(folder)) != ["config.json", "relation_matrix.safetensors"]
            loaded = ClassRelationMatrix.from_pretrained(folder)
            assert_is(loaded, expected[loaded.label_names[0] == "b0"])
    finally:
        worker.kill()
        worker.wait()
    assert left_behind > 0  # some kills landed inside a save
    version("c").save_pretrained(folder, card=False)
    assert sorted(os.listdir(folder)) == ["config.json", "relation_matrix.safetensors"]
