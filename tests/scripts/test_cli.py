"""`hf-labelsmooth show`: printed top related classes, heatmap file, errors, entry point."""
from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest
import torch

from hf_labelsmooth import ClassRelationMatrix, RelationTopK, create_loss
from hf_labelsmooth.cli import build_parser, main

NAMES = ["cat", "dog", "car"]
M = torch.tensor([[0.2, 0.7, 0.1], [0.6, 0.1, 0.3], [0.05, 0.15, 0.8]])


@pytest.fixture()
def saved_dir(tmp_path):
    ClassRelationMatrix(M, NAMES, method="ols", alpha=0.5, dataset="toy").save_pretrained(tmp_path / "m", card=False)
    return tmp_path / "m"


def test_show_prints_top_related_and_writes_png(saved_dir, tmp_path, capsys):
    png = tmp_path / "heat.png"
    assert main(["show", str(saved_dir), "--top", "1", "--png", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "class-relation matrix: K=3, method=ols, alpha=0.5, dataset=toy"
    assert out[2:5] == ["  cat  dog (0.700)", "  dog  cat (0.600)", "  car  dog (0.150)"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_default_top_is_capped_at_k_minus_1(saved_dir, capsys):
    assert main(["show", str(saved_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "top 2 related classes" in lines[1]
    assert lines[2] == "  cat  dog (0.700), car (0.100)"


def test_show_errors_are_messages(tmp_path, saved_dir, capsys):
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert "error: Expected a matrix folder, a saved model or a checkpoint but got" in capsys.readouterr().err
    (saved_dir / "relation_matrix.safetensors").write_bytes(b"\x00\x01")
    assert main(["show", str(saved_dir)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["nope"])


def test_console_entry_point_is_main():
    scripts = entry_points(group="console_scripts")
    (script,) = [ep for ep in scripts if ep.name == "hf-labelsmooth"]
    assert script.value == "hf_labelsmooth.cli:main" and script.load() is main


def test_show_and_card_mark_uniform_rows_of_an_ols_class_never_classified_correctly(tmp_path, capsys):
    loss = create_loss("ols", 3)
    logits = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 2.0], [0.0, 5.0, 1.0]])  # "car" is predicted as "dog"
    loss(logits, torch.tensor([0, 1, 2]))
    loss.end_epoch()
    matrix = ClassRelationMatrix.from_loss(loss, NAMES)
    assert matrix.uniform_rows() == [False, False, True]
    matrix.save_pretrained(tmp_path)
    assert main(["show", str(tmp_path), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("  cat  dog (") and lines[3].startswith("  dog  car (")
    assert lines[4] == "  car  (uniform row)"
    assert lines[5].startswith("1 uniform row(s): every other class gets the same mass: no learned relation")
    card = (tmp_path / "README.md").read_text()
    assert "| car | _uniform row_ | |" in card and "_1 of 3 rows are uniform rows:" in card
    assert "| cat | dog (" in card


def test_uniform_rows_of_a_top_n_table():
    values = torch.tensor([[0.2, 0.2], [0.5, 0.1], [0.3, 0.3], [0.2, 0.2], [0.1, 0.6]])
    indices = torch.tensor([[1, 2], [0, 2], [0, 1], [0, 4], [0, 4]])
    table = RelationTopK(indices, values, list("abcde"))
    # rows 0, 3, 4: the other classes' stored entries equal the tail's share (row 4 keeps 0.6 for itself)
    assert table.uniform_rows() == [True, False, False, True, True]


def test_show_on_a_run_that_learns_no_matrix_says_so(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "convnext", "num_labels": 3}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "hf-labelsmooth show: error: Expected a class-relation matrix in" in err
    assert "learns no matrix (ce, ls, " in err and "Only lls, lspp, ols learn one" in err
