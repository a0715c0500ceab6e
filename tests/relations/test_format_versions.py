"""Format versions: old configs are upgraded step by step in `schema.upgrade`, newer ones refused with the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_labelsmooth.relations import ClassRelationMatrix, load_relations, schema
from hf_labelsmooth.relations.constants import CONFIG_FILE, FORMAT_VERSION, LIBRARY_NAME

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "format_0_1_0" / "lls_dense"


def copy_with_config(tmp_path: Path, **changes: object) -> Path:
    """The LLS 0.1.0 fixture, copied, with config.json fields replaced (None: removed)."""
    folder = tmp_path / "artifact"
    shutil.copytree(FIXTURE, folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config.update(changes)
    config = {k: v for k, v in config.items() if v is not None}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


def test_every_older_version_has_an_upgrade_step() -> None:
    assert sorted(schema.UPGRADES) == list(range(FORMAT_VERSION))


def test_a_save_writes_the_current_version(tmp_path: Path) -> None:
    load_relations(FIXTURE).save_pretrained(tmp_path, card=False)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert (config["library_name"], config["format_version"], config["artifact"]) == (LIBRARY_NAME, FORMAT_VERSION,
                                                                                      "matrix")


def test_a_newer_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = copy_with_config(tmp_path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match=f"format version <= {FORMAT_VERSION} but got {FORMAT_VERSION + 1} .*newer "
                                         r"hf_labelsmooth. Upgrade hf_labelsmooth \(pip install -U hf_labelsmooth\)"):
        load_relations(folder)


def test_a_config_without_a_version_loads_as_version_0(tmp_path: Path) -> None:
    reference = load_relations(FIXTURE)
    matrix = load_relations(copy_with_config(tmp_path, format_version=None))
    assert matrix.label_names == reference.label_names and matrix.alpha == reference.alpha


def test_upgrade_runs_each_step_in_order_and_leaves_the_input_alone(monkeypatch) -> None:
    ran: list[int] = []

    def step(version: int):
        def run(config: dict) -> dict:
            ran.append(version)
            return {**config, "extra": {**config["extra"], "steps": [*config["extra"].get("steps", []), version]}}
        return run

    monkeypatch.setattr(schema, "FORMAT_VERSION", FORMAT_VERSION + 2)
    monkeypatch.setitem(schema.UPGRADES, FORMAT_VERSION, step(FORMAT_VERSION))
    monkeypatch.setitem(schema.UPGRADES, FORMAT_VERSION + 1, step(FORMAT_VERSION + 1))
    old = {"library_name": LIBRARY_NAME, "format_version": FORMAT_VERSION, "extra": {}}
    new = schema.upgrade(old)
    assert ran == [FORMAT_VERSION, FORMAT_VERSION + 1] and new["format_version"] == FORMAT_VERSION + 2
    assert new["extra"]["steps"] == ran and old == {"library_name": LIBRARY_NAME, "format_version": FORMAT_VERSION,
                                                    "extra": {}}


def test_a_0_1_0_artifact_loads_through_a_later_format_change(monkeypatch) -> None:
    """The hook a format change uses: a step from version 1 that renames a field; the loader sees the new field."""
    def rename(config: dict) -> dict:
        config = dict(config)
        config["extra"] = {**config["extra"], "trained_on": config.pop("dataset")}
        return config

    monkeypatch.setattr(schema, "FORMAT_VERSION", FORMAT_VERSION + 1)
    monkeypatch.setitem(schema.UPGRADES, FORMAT_VERSION, rename)
    matrix = ClassRelationMatrix.from_pretrained(FIXTURE)
    assert matrix.dataset is None and matrix.extra == {"seed": 7, "trained_on": "cifar10"}
