"""Issue 22's unclear cases that now end in a one-line error naming the fix (each failed before)."""
from __future__ import annotations

import json

import pytest
import torch

from hf_labelsmooth import LabelSmoothingTrainingArguments
from hf_labelsmooth.relations import ClassRelationMatrix


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_a_matrix_alpha_outside_the_unit_interval_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"Expected `alpha` .* in \[0, 1\] or None but got"):
        ClassRelationMatrix(torch.full((3, 3), 1 / 3), ["a", "b", "c"], alpha=alpha)


def test_a_saved_config_with_alpha_outside_the_unit_interval_does_not_load(tmp_path) -> None:
    ClassRelationMatrix(torch.full((3, 3), 1 / 3), ["a", "b", "c"], alpha=0.1).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "alpha": 1.5}))
    with pytest.raises(ValueError, match=r"`alpha` .* a number in \[0, 1\] or null"):
        ClassRelationMatrix.from_pretrained(tmp_path)


def test_a_string_alpha_names_the_fix(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"Expected `label_smoothing_alpha` to be a number in \[0, 1\] but got "
                                         r"'0.1' \(str\)"):
        LabelSmoothingTrainingArguments(output_dir=str(tmp_path), label_smoothing_method="ls",
                                        label_smoothing_alpha="0.1", report_to="none", use_cpu=True)
