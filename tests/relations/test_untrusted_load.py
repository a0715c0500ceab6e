"""Loading an untrusted folder: file types and sizes, the safetensors header and the config schema are checked first.

Every malformed input gets a ValueError / FileNotFoundError that names the field or file and the fix; no read
runs past what the header and K justify, nothing blocks, and `show` never prints control characters.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys

import pytest
import torch

from hf_labelsmooth import ClassRelationMatrix
from hf_labelsmooth.cli import main
from hf_labelsmooth.relations import RelationTopK

NAMES = ["cat", "dog", "car", "truck"]
M = torch.tensor([[0.1, 0.6, 0.05, 0.25], [0.5, 0.2, 0.2, 0.1], [0.02, 0.08, 0.3, 0.6], [0.05, 0.15, 0.7, 0.1]])


@pytest.fixture()
def folder(tmp_path):
    ClassRelationMatrix(M, NAMES, method="ols").save_pretrained(tmp_path / "m", card=False)
    return tmp_path / "m"


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def write_matrix_file(folder, data: bytes) -> None:
    """Replace the tensor file and record its sha256, as someone crafting a folder would."""
    (folder / "relation_matrix.safetensors").write_bytes(data)
    edit_config(folder, sha256={"relation_matrix.safetensors": hashlib.sha256(data).hexdigest()})


def safetensors_bytes(header: dict, data_size: int) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data_size


SPECIAL_FILES = """
import os, resource, sys
from hf_labelsmooth import ClassRelationMatrix
used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), resource.RLIM_INFINITY))  # a runaway read fails fast
for path in sys.argv[1:]:
    try:
        ClassRelationMatrix.from_pretrained(path)
        print(os.path.basename(path), "LOADED", flush=True)
    except Exception as err:
        print(os.path.basename(path), type(err).__name__, str(err).replace(chr(10), " "), flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="/dev/zero, FIFOs and /proc")
def test_devices_fifos_directories_and_sparse_files_are_refused_before_reading(tmp_path):
    cases = {}
    for name in ("zero_config", "urandom_matrix", "fifo_config", "fifo_matrix", "dir_config", "dir_matrix",
                 "sparse_padded", "sparse_header"):
        ClassRelationMatrix(M, NAMES).save_pretrained(tmp_path / name, card=False)
        cases[name] = tmp_path / name
    (cases["zero_config"] / "config.json").unlink()
    (cases["zero_config"] / "config.json").symlink_to("/dev/zero")
    (cases["urandom_matrix"] / "relation_matrix.safetensors").unlink()
    (cases["urandom_matrix"] / "relation_matrix.safetensors").symlink_to("/dev/urandom")
    for name, file in (("fifo_config", "config.json"), ("fifo_matrix", "relation_matrix.safetensors")):
        (cases[name] / file).unlink()
        os.mkfifo(cases[name] / file)
    for name, file in (("dir_config", "config.json"), ("dir_matrix", "relation_matrix.safetensors")):
        (cases[name] / file).unlink()
        (cases[name] / file).mkdir()
    with open(cases["sparse_padded"] / "relation_matrix.safetensors", "r+b") as handle:  # valid header, 8.6 GB
        handle.truncate(8_600_000_000)
    big = {"relation_matrix": {"dtype": "F32", "shape": [46_000, 46_000], "data_offsets": [0, 4 * 46_000 ** 2]}}
    with open(cases["sparse_header"] / "relation_matrix.safetensors", "wb") as handle:  # header justifies 8.5 GB
        handle.write(safetensors_bytes(big, 0))
        handle.truncate(handle.tell() + 4 * 46_000 ** 2)
    result = subprocess.run([sys.executable, "-c", SPECIAL_FILES, *map(str, cases.values())], capture_output=True,
                            text=True, timeout=120, check=False)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == set(cases), result.stderr[-2000:]
    expected = {"zero_config": "config.json at .* to be a regular file but got a character device",
                "urandom_matrix": "relation_matrix.safetensors at .* regular file but got a character device",
                "fifo_config": "regular file but got a FIFO", "fifo_matrix": "regular file but got a FIFO",
                "dir_config": "regular file but got a directory", "dir_matrix": "regular file but got a directory",
                "sparse_padded": r"8600000000 bytes where the header declares \d{3}\)",
                "sparse_header": r"Expected tensor 'relation_matrix' of shape \[4, 4\] .* but got \[46000, 46000\]"}
    for name, pattern in expected.items():
        assert lines[name].startswith("ValueError"), (name, lines[name])
        assert re.search(pattern, lines[name]), (name, lines[name])


@pytest.mark.parametrize("field, value, message", [
    ("format_version", None, "`format_version` .* to be an integer >= 0 but got None"),
    ("format_version", [1], r"`format_version` .* to be an integer >= 0 but got \[1\]"),
    ("format_version", float("inf"), "`format_version` .* to be an integer >= 0 but got inf"),
    ("format_version", "abc", "`format_version` .* to be an integer >= 0 but got 'abc'"),
    ("extra", 5, "`extra` .* to be a JSON object or null but got 5"),
    ("extra", [1, 2], r"`extra` .* to be a JSON object or null but got \[1, 2\]"),
    ("num_classes", "4", "`num_classes` .* to be an integer >= 2 but got '4'"),
    ("num_classes", None, "`num_classes` .* to be an integer >= 2 but got None"),
    ("label_names", "cat", "`label_names` .* to be a list of strings but got 'cat'"),
    ("label_names", [1, 2, 3, 4], "`label_names` .* to be a list of strings"),
    ("alpha", "0.1", "`alpha` .* to be a number in \\[0, 1\\] or null but got '0.1'"),
    ("epochs", -1, "`epochs` .* to be a finite number >= 0 or null"),
    ("method", 3, "`method` .* to be a string or null but got 3"),
    ("logits_kind", "sigmoid", "`logits_kind` .* to be one of"),
    ("sha256", {"../../etc/passwd": "0" * 64}, "`sha256` .* to be an object mapping"),
    ("artifact", ["matrix"], r"Expected a matrix artifact but got \['matrix'\]"),
])
def test_malformed_config_fields_name_the_field_and_the_fix(folder, field, value, message):
    edit_config(folder, **{field: value})
    with pytest.raises(ValueError, match=message) as info:
        ClassRelationMatrix.from_pretrained(folder)
    assert "Upgrade" not in str(info.value)


def test_deeply_nested_config_and_missing_fields(folder):
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"Expected valid JSON .*\(nested too deeply\)"):
        ClassRelationMatrix.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"library_name": "hf_labelsmooth", "format_version": 1}))
    with pytest.raises(ValueError, match=r"Expected fields \['num_classes', 'label_names'\]"):
        ClassRelationMatrix.from_pretrained(folder)


@pytest.mark.parametrize("tensors, message", [
    ({"relation_matrix": torch.tensor(1.0)}, r"'relation_matrix' of shape \[4, 4\] .* but got \[\]"),
    ({"relation_matrix": M, "pickle_me": torch.zeros(2)}, r"Expected tensors \['relation_matrix'\] .* got"),
    ({"logits": M}, r"Expected tensors \['relation_matrix'\]"),
    ({"relation_matrix": M, "logits": torch.full((4, 4), float("nan"))},
     r"Expected finite relation logits but got NaN/inf in rows \[0, 1, 2, 3\]"),
])
def test_tensors_the_config_does_not_justify_are_refused(folder, tensors, message):
    from safetensors.torch import save

    if "logits" in tensors and "relation_matrix" in tensors:
        edit_config(folder, logits_kind="softmax")
    write_matrix_file(folder, save(tensors))
    with pytest.raises(ValueError, match=message):
        ClassRelationMatrix.from_pretrained(folder)


def test_header_larger_than_the_file_and_bad_entries(folder):
    write_matrix_file(folder, struct.pack("<Q", 10 ** 12) + b"{}")
    with pytest.raises(ValueError, match="corrupt or truncated .*header of 1000000000000 bytes"):
        ClassRelationMatrix.from_pretrained(folder)
    bad = {"relation_matrix": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 8]}}  # 64 bytes declared as 8
    write_matrix_file(folder, safetensors_bytes(bad, 8))
    with pytest.raises(ValueError, match="bad header entry for tensor 'relation_matrix'"):
        ClassRelationMatrix.from_pretrained(folder)


def test_top_n_table_sizes_come_from_the_config(tmp_path):
    RelationTopK(torch.tensor([[1], [0], [0]]), torch.tensor([[0.5], [0.5], [0.5]]), ["a", "b", "c"]).save_pretrained(
        tmp_path, card=False)
    edit_config(tmp_path, top_n=1000)
    with pytest.raises(ValueError, match=r"Expected `top_n` in \[1, num_classes=3\]"):
        RelationTopK.from_pretrained(tmp_path)
    edit_config(tmp_path, top_n=2)
    with pytest.raises(ValueError, match=r"'indices' of shape \[3, 2\] .* but got \[3, 1\]"):
        RelationTopK.from_pretrained(tmp_path)


def test_show_prints_untrusted_names_escaped(folder, capsys):
    hostile = ["\x1b]0;pwned\x07", "\x1b[2J", "line\nbreak", "\u202eevil"]
    edit_config(folder, label_names=hostile, dataset="\x1b[31mred")
    assert main(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07" in out and "line\\nbreak" in out and "dataset=\\x1b[31mred" in out
    assert len(out.splitlines()) == 2 + len(hostile)  # a newline in a name does not forge a line


def test_mistyped_local_folder_says_so_without_asking_the_hub(tmp_path, monkeypatch, capsys):
    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_hub)
    monkeypatch.chdir(tmp_path)
    for name in ("my_matrx", "runs/matrix/", "../elsewhere"):
        with pytest.raises(FileNotFoundError, match=f"got {name!r}: no such local folder exists"):
            ClassRelationMatrix.from_pretrained(name)
    assert main(["show", "my_matrx"]) == 2
    assert "no such local folder exists" in capsys.readouterr().err
    with pytest.raises(ValueError, match="empty string"):
        ClassRelationMatrix.from_pretrained("")


def test_show_png_paths(folder, tmp_path, capsys):
    assert main(["show", str(folder), "--png", str(tmp_path)]) == 2
    assert "which is a directory. Name a file in it" in capsys.readouterr().err
    assert main(["show", str(folder), "--png", str(tmp_path / "missing" / "heat.png")]) == 2
    assert "Expected an existing folder" in capsys.readouterr().err
    assert main(["show", str(folder), "--png", str(folder / "config.json" / "heat.png")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["show", str(folder), "--png", str(tmp_path / "heat.xyz")]) == 2
    assert "Expected a heatmap file ending in one of" in capsys.readouterr().err
    assert main(["show", str(folder), "--png", str(tmp_path / "heat.jpg")]) == 0
    assert (tmp_path / "heat.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a real JPEG
    assert main(["show", str(folder), "--png", str(tmp_path / "heat.svg")]) == 0
    assert b"<svg" in (tmp_path / "heat.svg").read_bytes()[:1000]
