"""Artifacts written by release 0.1.0 load with exactly what was saved (tests/fixtures/format_0_1_0/README.md)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from hf_labelsmooth.relations import ClassRelationMatrix, RelationTopK, load_relations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "format_0_1_0"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())["artifacts"]
METADATA = ("label_names", "method", "alpha", "source_model", "dataset", "epochs", "extra")


def exact(values: list) -> torch.Tensor:
    """The saved float32 values (JSON holds them exactly)."""
    return torch.tensor(values, dtype=torch.float32)


def assert_as_saved(artifact: Any, expected: dict[str, Any]) -> None:
    assert type(artifact).__name__ == expected["class"]
    assert {k: getattr(artifact, k) for k in METADATA} == {k: expected[k] for k in METADATA}
    if isinstance(artifact, ClassRelationMatrix):
        assert torch.equal(artifact.matrix, exact(expected["matrix"]))
        assert artifact.logits_kind == expected["logits_kind"]
        assert (artifact.logits is None) == (expected["logits"] is None)
        if artifact.logits is not None:
            assert torch.equal(artifact.logits, exact(expected["logits"]))
    else:
        assert torch.equal(artifact.indices, torch.tensor(expected["indices"], dtype=torch.long))
        assert torch.equal(artifact.values, exact(expected["values"]))
        assert (artifact.top_n, artifact.include_self) == (expected["top_n"], expected["include_self"])


def test_every_kind_and_method_has_a_fixture() -> None:
    kinds = {(e["class"], e["method"]) for e in EXPECTED.values()}
    assert {("ClassRelationMatrix", m) for m in ("ols", "lspp", "lls")} | {("RelationTopK", "lls")} <= kinds


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_0_1_0_artifact_loads_as_saved(name: str) -> None:
    artifact = load_relations(FIXTURES / name)  # saved_model/: the model folder resolves to relation_matrix/
    assert_as_saved(artifact, EXPECTED[name])
    assert isinstance(artifact, ClassRelationMatrix if EXPECTED[name]["class"] == "ClassRelationMatrix"
                      else RelationTopK)


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e["class"] == "ClassRelationMatrix"])
def test_alpha_keeps_its_meaning_the_mass_moved_off_the_one_hot(name: str) -> None:
    """The loss trained with (1-α)I + αR (OLS too: its paper's α is 1 - α): a loaded α and R give back that target."""
    artifact = load_relations(FIXTURES / name)
    eye = torch.eye(artifact.num_classes)
    target = (1 - artifact.alpha) * eye + artifact.alpha * artifact.matrix
    torch.testing.assert_close(target, exact(EXPECTED[name]["target_matrix"]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_0_1_0_artifact_resaved_today_loads_the_same(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)  # the fixture itself is never written
    load_relations(folder).save_pretrained(tmp_path / "again", card=False)
    assert_as_saved(load_relations(tmp_path / "again"), EXPECTED[name])
