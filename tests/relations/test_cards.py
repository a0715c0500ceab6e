"""Cards are true and inert: every untrusted value (a config.json field, a label, a folder name) enters a card
escaped, one line, through `relations.card_text`; metadata holds Hub ids only; the card says how the matrix trained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from hf_labelsmooth import ClassRelationMatrix, create_loss, load_relations
from hf_labelsmooth.relations.card_text import code_string, hub_id, literal, plain
from hf_labelsmooth.relations.provenance import content_sha256, training_record
from hf_labelsmooth.relations.root_card import matrix_section, strongest_rows

HOSTILE = "x\n---\nlibrary_name: evil\n---\n<script>alert(1)</script> | `code` [link](http://e) $x$"
NAMES = ["cat", "dog", "car"]
HAND = torch.tensor([[0.0, 0.7, 0.3], [0.6, 0.0, 0.4], [0.5, 0.5, 0.0]])


def assert_inert(card_text: str, expected_meta: dict) -> ModelCard:
    """The card parses with huggingface_hub, its metadata is what we wrote, and no hostile text is live."""
    card = ModelCard(card_text)
    meta = card.data.to_dict()
    for key, value in expected_meta.items():
        assert meta.get(key) == value, key
    assert meta.get("library_name") != "evil"
    assert card_text.count("\n---\n") == 1 and card_text.startswith("---\n")  # the front matter only
    assert "<script>" not in card_text and "[link](http" not in card_text and "`code`" not in card_text
    assert "\nlibrary_name: evil" not in card.text
    for line in card.text.splitlines():  # table rows stay rows: every | inside a value is escaped
        if line.startswith("| ") and "hostile" not in line:
            assert line.replace("\\|", "").count("|") in (3, 4, 5), line
    return card


def test_literal_is_one_line_with_markdown_and_html_escaped() -> None:
    text = literal(HOSTILE + "\u202e\x00\x1b[31m")
    assert "\n" not in text and "\u202e" not in text and "\x00" not in text and "\x1b" not in text
    assert "\\<script\\>" in text and "\\|" in text and "\\`code\\`" in text and "\\[link\\]" in text
    assert "\\$x\\$" in text and plain("a\r\n\tb") == "a b" and len(plain("y" * 5000)) == 300
    assert json.loads(code_string(HOSTILE)) == plain(HOSTILE) and "\n" not in code_string(HOSTILE)


@pytest.mark.parametrize("value,expected", [
    ("google/vit-base-patch16-224", True), ("beans", True), ("digits (local)", False), ("/abs/path", False),
    ("a/b/c", False), ("x\n---", False), ("owner/na--me", False), ("owner/..", False), ("", False), (None, False),
])
def test_hub_id_accepts_repo_ids_only(value, expected: bool) -> None:
    assert (hub_id(value) is not None and hub_id(value) == value) is expected


def _hostile_folder(tmp_path: Path, **fields) -> Path:
    matrix = ClassRelationMatrix(HAND, NAMES, method="ols", alpha=0.1, source_model="google/vit-base-patch16-224",
                                 dataset="beans", epochs=2)
    folder = matrix.save_pretrained(tmp_path / "src")
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_an_untrusted_method_is_escaped_in_title_table_and_citation(tmp_path: Path) -> None:
    """issue 22: config.json's method was written raw into the re-saved / pushed card."""
    loaded = load_relations(_hostile_folder(tmp_path, method=HOSTILE))
    loaded.save_pretrained(tmp_path / "resaved", repo_id="alice/matrix")
    text = (tmp_path / "resaved" / "README.md").read_text()
    card = assert_inert(text, {"library_name": "hf_labelsmooth", "base_model": "google/vit-base-patch16-224"})
    assert HOSTILE.split("\n")[0] not in card.data.tags  # an unregistered method is no tag
    escaped = literal(HOSTILE)
    assert f"# Class-relation matrix: {escaped}\n" in text and f"| Method | {escaped} |" in text
    assert f"No paper is associated with the method {escaped}." in text
    assert str(loaded.generate_model_card()) .count("\n---\n") == 1


def test_untrusted_sources_labels_training_and_extra_are_escaped(tmp_path: Path) -> None:
    folder = _hostile_folder(tmp_path, source_model=HOSTILE, dataset=HOSTILE, label_names=[HOSTILE, "b|c", "<i>"],
                             extra={HOSTILE: HOSTILE}, training={HOSTILE: HOSTILE, "prior": {"source": HOSTILE,
                                                                                              "sha256": HOSTILE}})
    load_relations(folder).save_pretrained(tmp_path / "resaved", repo_id=HOSTILE)
    text = (tmp_path / "resaved" / "README.md").read_text()
    card = assert_inert(text, {"library_name": "hf_labelsmooth"})
    assert "base_model" not in card.data.to_dict() and "datasets" not in card.data.to_dict()  # not Hub ids
    assert 'load_relations("<user>/<repo>")' in text  # a repo id that is none is never quoted into code


def test_metadata_carries_hub_ids_only_and_the_mixin_tags(tmp_path: Path) -> None:
    hub = ClassRelationMatrix(HAND, NAMES, method="lls", source_model="google/vit-base-patch16-224", dataset="beans")
    local = ClassRelationMatrix(HAND, NAMES, method="lls", source_model="vit (local)", dataset="digits (local)")
    hub_meta = ModelCard(str(hub.generate_model_card())).data
    local_meta = ModelCard(str(local.generate_model_card())).data
    assert hub_meta.base_model == "google/vit-base-patch16-224" and hub_meta.datasets == ["beans"]
    assert local_meta.base_model is None and local_meta.datasets is None
    assert {"model_hub_mixin", "hf_labelsmooth", "lls"} <= set(hub_meta.tags)
    assert hub_meta.library_name == local_meta.library_name == "hf_labelsmooth"


def test_training_settings_are_saved_loaded_and_shown(tmp_path: Path) -> None:
    """issue 22: a default run and a --relation_lr 1e-2 run could not be told apart from their files."""
    loss = create_loss("lls", 3)
    optimizer = torch.optim.AdamW([{"params": [torch.zeros(2, requires_grad=True)]},
                                   {"params": list(loss.parameters()), "lr": 1e-2, "weight_decay": 0.0}], lr=1e-4)
    record = training_record(loss, optimizer)
    assert record == {"optimizer": "AdamW (Adam-like)", "relation_lr": 0.01, "relation_weight_decay": 0.0}
    ols = training_record(create_loss("ols", 3), None, update_every=7)
    assert ols == {"update_every": 7} and training_record(create_loss("ols", 3)) == {"update_every": None}
    sparse = training_record(create_loss("lls", 30, top_n=4), torch.optim.SGD(create_loss("lls", 30, top_n=4)
                                                                              .parameters(), lr=0.1))
    assert sparse == {"update_every": None, "top_n": 4}  # the loss's parameters are not in that optimizer
    ClassRelationMatrix.from_loss(loss, NAMES, training=record).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["training"] == record and load_relations(tmp_path / "m").training == record
    text = (tmp_path / "m" / "README.md").read_text()
    assert "| Matrix learning rate (`relation_lr`) | 0.01 |" in text
    assert "| Matrix optimizer | AdamW (Adam-like) |" in text
    config["training"] = ["not", "an", "object"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Expected `training` .* to be a JSON object or null"):
        load_relations(tmp_path / "m")


def test_content_digest_names_the_matrix_not_the_file(tmp_path: Path) -> None:
    matrix = ClassRelationMatrix(HAND, NAMES, method="ols")
    matrix.save_pretrained(tmp_path / "m", card=False)
    digest = content_sha256(load_relations(tmp_path / "m"))
    assert digest == content_sha256(matrix) == content_sha256(load_relations(tmp_path / "m"))
    other = HAND.clone()
    other[0] = torch.tensor([0.0, 0.69, 0.31])
    assert content_sha256(ClassRelationMatrix(other, NAMES)) != digest


def test_root_section_shows_heatmap_strongest_relations_and_reuse() -> None:
    matrix = ClassRelationMatrix(HAND, ["cat", "d|g<b>", "car"], method="ols", alpha=0.1)
    assert [name for name, _ in strongest_rows(matrix, rows=2)] == ["cat", "d|g<b>"]  # 0.7, 0.6 (car: 0.5)
    text = matrix_section(matrix, repo_id="alice/vit-ols")
    assert "![Class-relation matrix heatmap (diagonal hidden)](relation_matrix/relation_matrix.png)" in text
    assert "| cat | d\\|g\\<b\\> (0.700) | car (0.300) |" in text and "Online Label Smoothing" in text
    assert "hf-labelsmooth show alice/vit-ols" in text and "--relation-matrix alice/vit-ols" in text
    assert "α = 0.1" in text and "relation_matrix/README.md" in text
    hostile = matrix_section(matrix, repo_id=HOSTILE, image=False)
    assert "relation_matrix.png" not in hostile and "<this repo or folder>" in hostile and "<script>" not in hostile
