"""The launcher's flags and refusals, its hooks into timm, and newer timm's loss API (``--loss`` from LOSS_TYPES)."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
import timm.loss
import timm.optim
import timm.task
import timm.utils
import torch

from hf_labelsmooth.cli import build_parser
from hf_labelsmooth.integrations.timm.hooks import LaunchState, installed
from hf_labelsmooth.integrations.timm.launcher import LaunchError, LaunchOptions, launch, split_launcher_args
from hf_labelsmooth.integrations.timm.script_args import check_script_args, with_default_smoothing
from hf_labelsmooth.options import RelationOptions
from hf_labelsmooth.relations import load_relations
from tests.support.digits import write_digits_imagefolder
from tests.support.paths import SUPPORT

SCRIPT = SUPPORT / "timm_train_loss_api.py"


def test_launcher_flags_are_taken_anywhere_by_exact_name_and_the_rest_keeps_its_order() -> None:
    options, rest = split_launcher_args(["--model", "resnet18", "--loss-type", "lls", "--loss", "ce",
                                         "--ls-alpha=0.2", "-b", "8", "--relation-lr", "0.5", "DIR"])
    assert (options.loss_type, options.ls_alpha, options.relation_lr) == ("lls", 0.2, 0.5)
    assert rest == ["--model", "resnet18", "--loss", "ce", "-b", "8", "DIR"]  # --loss is train.py's, not ours
    merged, _ = split_launcher_args(["--ls-alpha", "0.3"], LaunchOptions(loss_type="ols", ls_alpha=0.1))
    assert (merged.loss_type, merged.ls_alpha) == ("ols", 0.3)


def test_command_line_takes_launcher_flags_before_and_after_the_script() -> None:
    args = build_parser().parse_args(["timm-train", "--loss-type", "ols", "train.py", "--data-dir", "d",
                                      "--ls-alpha", "0.2"])
    assert (args.loss_type, args.script, args.script_args) == ("ols", "train.py", ["--data-dir", "d", "--ls-alpha",
                                                                                   "0.2"])
    options, rest = split_launcher_args(args.script_args)
    assert options.ls_alpha == 0.2 and rest == ["--data-dir", "d"]


def test_smoothing_defaults_to_zero_unless_set_on_the_line_or_in_the_config(tmp_path) -> None:
    assert with_default_smoothing(["--lr", "1"], "lls") == ["--smoothing", "0", "--lr", "1"]
    assert with_default_smoothing(["--lr", "1"], None) == ["--lr", "1"]  # train.py's own loss: untouched
    for given in (["--smoothing", "0.2"], ["--smoothing=0.2"], ["--smooth", "0.2"]):
        assert with_default_smoothing(given, "lls") == given  # refused later, with the reason
    config = tmp_path / "c.yaml"
    config.write_text("smoothing: 0.2\nlr: 0.1\n")
    assert with_default_smoothing(["-c", str(config)], "ols") == ["-c", str(config)]
    config.write_text("lr: 0.1\n")
    assert with_default_smoothing([f"--config={config}"], "ols")[:2] == ["--smoothing", "0"]


@pytest.mark.parametrize("options,match", [
    (LaunchOptions(loss_type="ce"), "Expected --loss-type in .*'lls'.* but got 'ce'"),
    (LaunchOptions(loss_type="nope"), "Expected --loss-type in"),
    (LaunchOptions(loss_type="relation_prior"), "Expected --relation-matrix together"),
    (LaunchOptions(loss_type="ols", relation_matrix="m"), "Expected --relation-matrix together"),
    (LaunchOptions(loss_type="lls", relation_update_every=5), "refreshes on a period"),
    (LaunchOptions(loss_type="ls", relation_top_n=4), "Expected --relation-top-n >= 1"),
])
def test_bad_launcher_flags_are_refused_before_train_py_runs(options: LaunchOptions, match: str) -> None:
    with pytest.raises(LaunchError, match=match):
        launch(SCRIPT, [], options)


def test_flags_are_checked_against_the_loss_train_py_chooses() -> None:
    options = LaunchOptions(relation_update_every=5)
    options.check()  # no loss yet: a newer train.py may choose one with --loss
    options.check("ols")
    with pytest.raises(LaunchError, match="refreshes on a period"):
        options.check("lls")
    with pytest.raises(LaunchError, match="refreshes on a period"):
        check_script_args(options, _args(loss="lls"))


def test_missing_script_names_where_to_get_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="Expected the path of timm's train.py .*pytorch-image-models"):
        launch(tmp_path / "train.py", ["--loss-type", "ols"])


def test_flags_map_onto_the_one_options_spec_and_the_period_stays_out_of_the_loss() -> None:
    names = [str(i) for i in range(10)]
    spec = LaunchOptions(loss_type="lls", ls_alpha=0.2, relation_top_n=3, relation_update_every=7,
                         relation_lr=0.5).relation_options()
    assert spec == RelationOptions(method="lls", alpha=0.2, top_n=3, update_every=7, relation_lr=0.5)
    loss = spec.build(10, names)
    assert (loss.top_n, loss.alpha, loss.rows.refresh_every) == (3, 0.2, None)  # the task counts optimizer steps
    ols = LaunchOptions(loss_type="ols", relation_update_every=5).relation_options().build(10, names)
    assert ols.update_every is None


def _args(**kwargs) -> Namespace:
    return Namespace(**{"smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "cutmix_minmax": None, "jsd_loss": False,
                        "bce_loss": False, "kd_model_name": None, **kwargs})


@pytest.mark.parametrize("options,args,match", [
    (LaunchOptions(loss_type="ols"), _args(smoothing=0.1, cutmix=1.0), "smooth them twice"),
    (LaunchOptions(loss_type="ols"), _args(smoothing=0.1), "smoothing weight from --ls-alpha"),
    (LaunchOptions(loss_type="lls"), _args(jsd_loss=True), "Expected no --jsd-loss"),
    (LaunchOptions(loss_type="lls"), _args(bce_loss=True), "Expected no --bce-loss"),
    (LaunchOptions(loss_type="lls"), _args(kd_model_name="resnet50"), "Expected no --kd-model-name"),
    (LaunchOptions(loss_type="lls"), _args(loss="bce"), "Expected train.py's --loss ce"),
    (LaunchOptions(loss_type="lls"), _args(loss="ols"), "Expected one relation loss"),
    (LaunchOptions(ls_alpha=0.2), _args(), "Expected --loss-type .* with --ls-alpha but got none"),
])
def test_train_py_flags_that_contradict_the_relation_loss_are_refused(options, args, match: str) -> None:
    with pytest.raises(LaunchError, match=match):
        check_script_args(options, args)


def test_relation_loss_from_the_script_or_the_launcher() -> None:
    assert check_script_args(LaunchOptions(), _args(loss="lls")) == "lls"
    assert check_script_args(LaunchOptions(loss_type="ols"), _args(loss="ce")) == "ols"
    assert check_script_args(LaunchOptions(), _args(loss="ce")) is None  # timm's own loss: nothing installed


def test_hooks_are_installed_for_the_run_and_timm_is_restored_after() -> None:
    names = {(timm.utils, "init_distributed_device"), (timm.utils, "get_outdir"), (timm.task, "ClassificationTask"),
             (timm.optim, "create_optimizer_v2"), (timm.loss, "create_classification_loss"),
             (timm.loss, "LOSS_TYPES"), (timm.task, "LOSS_TYPES")}
    before = {(module, name): getattr(module, name) for module, name in names}
    with installed(LaunchState(LaunchOptions(loss_type="lls"))):
        assert all(getattr(module, name) is not before[module, name] for module, name in names)
        assert {"ols", "lspp", "lls"} <= set(timm.loss.LOSS_TYPES) and timm.loss.LOSS_TYPES[:2] == ("ce", "bce")
        assert timm.loss.create_classification_loss("ols").loss_type == "ols"  # a placeholder the task replaces
        assert type(timm.loss.create_classification_loss("ce", smoothing=0.1)).__name__ == \
            "LabelSmoothingCrossEntropy"
    assert all(getattr(module, name) is before[module, name] for module, name in names)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    write_digits_imagefolder(root, train_per_class=8, val_per_class=1)
    return root


@pytest.mark.parametrize("via", ["factory", "kwargs"])
@pytest.mark.parametrize("flags", [["--loss", "lls"], ["--loss-type", "lls", "--loss", "ce"]],
                         ids=["script-loss", "launcher-loss-type"])
def test_newer_timm_loss_api_trains_the_relation_loss(data, tmp_path, via: str, flags: list[str]) -> None:
    torch.set_num_threads(1)
    result = launch(SCRIPT, ["--data-dir", str(data), "--output", str(tmp_path), "--via", via, *flags])
    loss = result.task.loss
    assert loss.name == "lls" and result.task.completed_epochs == 1 and loss.logits.abs().max() > 1e-3
    *network, matrix = json.loads((tmp_path / "run" / "optimizer.json").read_text())
    assert matrix == {"weight_decay": 0.0, "size": 100}  # its own group; LLS: no decay
    assert max(g["weight_decay"] for g in network) == 0.05 and sum(g["size"] for g in network) > 1000
    assert load_relations(tmp_path / "run" / "relation_matrix").method == "lls"


def test_newer_timm_loss_api_refuses_two_losses(data, tmp_path) -> None:
    with pytest.raises(LaunchError, match="Expected train.py's --loss ce .* but got --loss bce"):
        launch(SCRIPT, ["--data-dir", str(data), "--output", str(tmp_path), "--loss", "bce", "--loss-type", "lls"])
