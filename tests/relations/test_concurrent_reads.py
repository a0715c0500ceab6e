"""Issue 22: a reader never fails on a folder a concurrent save leaves consistent; a disk full after a save's commit
point says the save committed; a zero-byte or truncated matrix file is named."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hf_labelsmooth._io.commit as commit
from hf_labelsmooth import ClassRelationMatrix
from hf_labelsmooth.relations import load_relations, schema
from tests.support.paths import subprocess_env

WRITER = """
import sys, torch
from hf_labelsmooth import ClassRelationMatrix
folder, saves = sys.argv[1], int(sys.argv[2])
versions = [ClassRelationMatrix(torch.softmax(torch.randn(6, 6, generator=torch.Generator().manual_seed(s)), -1),
                                [f"c{i}" for i in range(6)], method="ols") for s in (0, 1)]
for i in range(saves):
    versions[i % 2].save_pretrained(folder, card=False)
print("done", flush=True)
"""


def version(seed: int, k: int = 6) -> ClassRelationMatrix:
    matrix = torch.softmax(torch.randn(k, k, generator=torch.Generator().manual_seed(seed)), -1)
    return ClassRelationMatrix(matrix, [f"c{i}" for i in range(k)], method="ols")


def test_a_save_between_the_readers_record_and_data_is_read_again_consistently(tmp_path, monkeypatch) -> None:
    version(0).save_pretrained(tmp_path, card=False)
    read_config, calls = schema.read_config, []

    def config_then_a_concurrent_save(path):
        config = read_config(path)  # the record of save 0 ...
        if not calls:
            version(1).save_pretrained(tmp_path, card=False)  # ... then another process commits save 1
        calls.append(path)
        return config

    monkeypatch.setattr(schema, "read_config", config_then_a_concurrent_save)
    loaded = load_relations(tmp_path)  # before: "the folder mixes files of two saves"
    assert torch.equal(loaded.matrix, version(1).matrix) and len(calls) == 2


def test_readers_never_fail_while_another_process_saves(tmp_path) -> None:
    version(0).save_pretrained(tmp_path, card=False)
    expected = [version(0).matrix, version(1).matrix]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "300"], stdout=subprocess.PIPE,
                              text=True, env=subprocess_env(OMP_NUM_THREADS="1"))
    loads = 0
    try:
        while writer.poll() is None or loads < 300:  # at least 300 loads, all while (or after) the writer saves
            matrix = load_relations(tmp_path).matrix
            assert any(torch.equal(matrix, m) for m in expected)
            loads += 1
    finally:
        out, _ = writer.communicate(timeout=600)
    assert writer.returncode == 0 and "done" in out


def test_disk_full_after_the_commit_point_says_the_save_committed(tmp_path, monkeypatch) -> None:
    version(0).save_pretrained(tmp_path)
    write_file = commit.write_file

    def full_disk_for_the_card(path: Path, data: bytes) -> None:
        if path.name == "README.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        write_file(path, data)

    monkeypatch.setattr(commit, "write_file", full_disk_for_the_card)
    with pytest.raises(OSError, match=r"^Expected the save .* after its commit point: the save is committed .*"
                                      r"README.md.*Free space") as info:
        version(1).save_pretrained(tmp_path)
    assert info.value.errno == errno.ENOSPC and "\n" not in str(info.value)
    assert torch.equal(load_relations(tmp_path).matrix, version(1).matrix)  # committed indeed


def test_disk_full_before_the_commit_point_keeps_the_previous_save(tmp_path, monkeypatch) -> None:
    version(0).save_pretrained(tmp_path, card=False)

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(commit, "write_pending", full_disk)
    with pytest.raises(OSError) as info:
        version(1).save_pretrained(tmp_path, card=False)
    assert "committed" not in str(info.value)
    assert torch.equal(load_relations(tmp_path).matrix, version(0).matrix)


@pytest.mark.parametrize("size", [0, 7, 60])
def test_a_zero_byte_or_truncated_matrix_file_is_named(tmp_path, size: int) -> None:
    version(0).save_pretrained(tmp_path, card=False)
    path = tmp_path / "relation_matrix.safetensors"
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(ValueError, match=rf"^Expected .*{path}.* (corrupt|truncated|sha256)"):
        load_relations(tmp_path)
