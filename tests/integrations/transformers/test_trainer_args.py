"""LabelSmoothingTrainingArguments: HfArgumentParser fields, defaults, and clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import HfArgumentParser

from hf_labelsmooth import LabelSmoothingTrainingArguments

BASE = ["--output_dir", "unused", "--report_to", "none", "--use_cpu"]


def _parse(*extra: str) -> LabelSmoothingTrainingArguments:
    (args,) = HfArgumentParser(LabelSmoothingTrainingArguments).parse_args_into_dataclasses(args=[*BASE, *extra])
    return args


def test_parser_reads_new_fields() -> None:
    args = _parse("--label_smoothing_method", "lls", "--label_smoothing_alpha", "0.3", "--relation_lr", "0.01",
                  "--relation_weight_decay", "0.001", "--learning_rate", "1e-4")
    assert (args.label_smoothing_method, args.label_smoothing_alpha) == ("lls", 0.3)
    assert (args.relation_lr, args.relation_weight_decay, args.learning_rate) == (0.01, 0.001, 1e-4)
    assert _parse("--label_smoothing_method", "lspp", "--relation_top_n", "8").relation_top_n == 8
    ols = _parse("--label_smoothing_method", "ols", "--relation_update_every", "50")
    assert ols.relation_update_every == 50 and ols.label_smoothing_alpha is None
    default = _parse()
    assert default.label_smoothing_method == "ce" and default.relation_matrix is None


def test_parser_rejects_unknown_method(capsys) -> None:
    with pytest.raises(SystemExit):
        _parse("--label_smoothing_method", "focal")
    assert "invalid choice" in capsys.readouterr().err


def test_relation_matrix_selects_prior() -> None:
    args = _parse("--relation_matrix", "user/matrix")
    assert args.label_smoothing_method == "relation_prior" and args.relation_matrix == "user/matrix"
    with pytest.raises(ValueError, match="relation_matrix"):
        _parse("--label_smoothing_method", "relation_prior")
    with pytest.raises(ValueError, match="relation_matrix"):
        _parse("--label_smoothing_method", "lls", "--relation_matrix", "user/matrix")


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lls"])
def test_builtin_label_smoothing_factor_is_an_error(method: str) -> None:
    with pytest.raises(ValueError, match="label_smoothing_factor.*--label_smoothing_method ls"):
        _parse("--label_smoothing_method", method, "--label_smoothing_factor", "0.1")


@pytest.mark.parametrize("extra, match", [
    (["--label_smoothing_method", "ls", "--relation_update_every", "5"], "relation_update_every"),
    (["--label_smoothing_method", "ols", "--relation_update_every", "0"], "relation_update_every"),
    (["--label_smoothing_method", "ls", "--label_smoothing_alpha", "1.5"], r"\[0, 1\]"),
    (["--label_smoothing_alpha", "0.1"], "method 'ce'"),
    (["--label_smoothing_method", "lls", "--relation_lr", "-1"], "relation_lr"),
    (["--label_smoothing_method", "ls", "--relation_top_n", "4"], "relation_top_n"),
    (["--label_smoothing_method", "lspp", "--relation_top_n", "0"], "relation_top_n"),
])
def test_invalid_combinations(extra: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _parse(*extra)


def test_import_is_lazy() -> None:
    code = ("import sys, hf_labelsmooth; assert 'transformers' not in sys.modules; "
            "hf_labelsmooth.LabelSmoothingTrainer; assert 'transformers' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["relation_lr", "relation_weight_decay"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_relation_optimizer_fields_must_be_finite(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"Expected `{name}` to be a finite number >= 0 but got"):
        _parse("--label_smoothing_method", "lls", f"--{name}={value}")


@pytest.mark.parametrize("method, name", [("ls", "relation_lr"), ("ce", "relation_weight_decay"),
                                          ("ols", "relation_lr")])
def test_relation_optimizer_fields_without_parameters_warn(method: str, name: str) -> None:
    with pytest.warns(UserWarning, match=f"`{name}`=0.01 has no effect with method '{method}'.*'lls', 'lspp'"):
        _parse("--label_smoothing_method", method, f"--{name}", "0.01")


def test_learnable_methods_take_relation_optimizer_fields_silently(recwarn) -> None:
    _parse("--label_smoothing_method", "lspp", "--relation_lr", "0.01", "--relation_weight_decay", "0")
    assert not [w for w in recwarn if "relation_" in str(w.message)]


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_relation_matrix_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="Expected `relation_matrix` .* but got an empty string"):
        _parse("--relation_matrix", value)
