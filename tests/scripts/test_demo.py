"""The README's main job, shortened: trains for real, writes the table and the matrices."""
from __future__ import annotations

import torch

from hf_labelsmooth import ClassRelationMatrix
from run_digits_demo import add_label_noise, main


def test_demo_trains_and_writes_matrices(tmp_path) -> None:
    rows = main(["--output-dir", str(tmp_path), "--methods", "ce", "ols", "lspp", "--epochs", "3"])
    assert [r["method"] for r in rows] == ["ce", "ols", "lspp"]
    assert all(r["accuracy"] > 0.5 for r in rows)  # chance is 0.1
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n") == 5 and "| ols |" in table
    ols = ClassRelationMatrix.from_pretrained(tmp_path / "ols")
    assert ols.method == "ols" and ols.label_names == [str(d) for d in range(10)]
    assert not torch.allclose(ols.matrix, torch.full((10, 10), 0.1))
    assert torch.all(ols.matrix.diagonal() > 0.5)  # averaged correct predictions peak on the class itself
    lspp = ClassRelationMatrix.from_pretrained(tmp_path / "lspp")
    assert torch.all(lspp.matrix.diagonal() == 0)
    assert (tmp_path / "ols" / "relation_matrix.png").stat().st_size > 1000


def test_symmetric_label_noise_flips_the_requested_fraction_to_other_classes() -> None:
    labels = torch.arange(10).repeat(200)
    noisy = add_label_noise(labels, 0.3, 10, seed=0)
    flipped = noisy != labels
    assert abs(flipped.float().mean().item() - 0.3) < 0.03
    assert noisy.min() >= 0 and noisy.max() < 10
