"""ClassRelationMatrix: round trips, model card contents, validation on load, atomic saves, subset, top related."""
from __future__ import annotations

import hashlib
import json
import math
import os

import pytest
import torch

import hf_labelsmooth._io as rio
from hf_labelsmooth import ClassRelationMatrix, create_loss

NAMES = ["cat", "dog", "car", "truck"]
# Hand-made matrix whose off-diagonal ordering is known: cat→dog>truck>car, dog→cat>car>truck, ...
HAND = torch.tensor([[0.10, 0.60, 0.05, 0.25],
                     [0.50, 0.20, 0.20, 0.10],
                     [0.02, 0.08, 0.30, 0.60],
                     [0.05, 0.15, 0.70, 0.10]])


def random_lls(k: int = 4):
    loss = create_loss("lls", k, alpha=0.2)
    with torch.no_grad():
        loss.logits.copy_(torch.randn(k, k) * 3)
    return loss


@pytest.mark.parametrize("method", ["lls", "lspp", "ols"])
def test_round_trip_files_and_metadata(tmp_path, method):
    loss = random_lls() if method == "lls" else create_loss(method, 4)
    if method == "lspp":
        with torch.no_grad():
            loss.logits.copy_(torch.randn(4, 4))
    crm = ClassRelationMatrix.from_loss(loss, NAMES, source_model="resnet18", dataset="toy", epochs=3, seed=7)
    crm.save_pretrained(tmp_path, card=False)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "relation_matrix.safetensors"]
    back = ClassRelationMatrix.from_pretrained(tmp_path)
    assert torch.equal(back.matrix, loss.relation_matrix())
    assert (back.method, back.alpha, back.source_model, back.dataset, back.epochs) == (
        method, loss.alpha, "resnet18", "toy", 3)
    assert back.label_names == NAMES and back.extra == {"seed": 7}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["label_names"] == NAMES and config["num_classes"] == 4
    if method == "ols":
        assert back.logits is None and back.logits_kind is None
    else:
        assert torch.equal(back.logits, loss.logits.detach())
        assert back.logits_kind == {"lls": "softmax", "lspp": "masked_softmax"}[method]


def test_card_contents(tmp_path):
    crm = ClassRelationMatrix(HAND, NAMES, method="lls", alpha=0.2, source_model="resnet18", dataset="toy", epochs=5)
    crm.save_pretrained(tmp_path, repo_id="me/toy-lls")
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: hf_labelsmooth" in card and "- toy" in card
    assert "Learnable Label Smoothing (LLS)" in card and "| Epochs | 5 |" in card
    assert "| Source model | resnet18 |" in card and "| α (mass moved off the one-hot) | 0.2 |" in card
    assert "![Class-relation matrix heatmap (diagonal hidden)](relation_matrix.png)" in card
    assert (tmp_path / "relation_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row, name in enumerate(NAMES):  # top-3 table computed by hand: off-diagonal entries sorted descending
        others = sorted((j for j in range(4) if j != row), key=lambda j: -float(HAND[row, j]))
        cells = " | ".join(f"{NAMES[j]} ({float(HAND[row, j]):.3f})" for j in others)
        assert f"| {name} | {cells} |" in card
    assert 'load_relations("me/toy-lls")' in card and 'create_loss("relation_prior"' in card
    assert "LLS: Regulating Neural Network Training via Learnable Label Smoothing" in card


def test_card_citation_follows_method_and_local_dataset_stays_out_of_metadata(tmp_path):
    ClassRelationMatrix(HAND, NAMES, method="ols", dataset="/data/trec").save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "Delving Deep into Label Smoothing" in card and "Learnable Label Smoothing" not in card
    metadata = card.split("---")[1]
    assert "datasets" not in metadata and "| Dataset | /data/trec |" in card


@pytest.mark.parametrize("matrix,names,message", [
    (torch.ones(3, 4) / 4, NAMES[:3], "square"),
    (torch.tensor([[0.5, 0.5], [1.5, -0.5]]), NAMES[:2], "non-negative"),
    (torch.tensor([[0.5, 0.5], [float("nan"), 1.0]]), NAMES[:2], "finite"),
    (torch.tensor([[0.5, 0.5], [0.5, 0.4998]]), NAMES[:2], "sum to 1"),
    (HAND, ["a", "b", "a", "c"], "unique"),
    (HAND, NAMES[:3], "4 label names"),
])
def test_validation_errors(matrix, names, message):
    with pytest.raises(ValueError, match=message):
        ClassRelationMatrix(matrix, names)


def test_row_sum_tolerance_is_1e4():
    ClassRelationMatrix(torch.tensor([[0.5, 0.5], [0.5, 0.50009]]), ["a", "b"])  # within 1e-4: accepted


def saved(tmp_path, **kwargs):
    ClassRelationMatrix(HAND, NAMES, **kwargs).save_pretrained(tmp_path, card=False)
    return tmp_path


def rewrite(folder, tensors=None, **config_changes):
    """Replace the tensors and/or config fields as a deliberate editor would, keeping the recorded sha256 right."""
    if tensors is not None:
        rio.write_tensors(folder / "relation_matrix.safetensors", tensors, {})
    config = json.loads((folder / "config.json").read_text())
    digest = hashlib.sha256((folder / "relation_matrix.safetensors").read_bytes()).hexdigest()
    config.update(config_changes, sha256={"relation_matrix.safetensors": digest})
    (folder / "config.json").write_text(json.dumps(config))


def test_truncated_or_corrupt_files_give_clear_errors(tmp_path):
    path = saved(tmp_path) / "relation_matrix.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ClassRelationMatrix.from_pretrained(tmp_path)
    path.write_bytes(data)
    (tmp_path / "config.json").write_text('{"label_names": [')
    with pytest.raises(ValueError, match="Expected valid JSON"):
        ClassRelationMatrix.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        ClassRelationMatrix.from_pretrained(tmp_path)


def test_tampered_contents_fail_validation(tmp_path):
    saved(tmp_path)
    rewrite(tmp_path, {"relation_matrix": HAND * 2})
    with pytest.raises(ValueError, match="sum to 1"):
        ClassRelationMatrix.from_pretrained(tmp_path)
    rewrite(tmp_path, {"relation_matrix": HAND})
    rewrite(tmp_path, num_classes=5, label_names=NAMES + ["bus"])
    with pytest.raises(ValueError, match=r"Expected tensor 'relation_matrix' of shape \[5, 5\].* but got \[4, 4\]"):
        ClassRelationMatrix.from_pretrained(tmp_path)
    rewrite(tmp_path, num_classes=4, label_names=NAMES[:3])
    with pytest.raises(ValueError, match="Expected 4 label names"):
        ClassRelationMatrix.from_pretrained(tmp_path)


def test_inconsistent_logits_rejected(tmp_path):
    loss = random_lls()
    ClassRelationMatrix.from_loss(loss, NAMES).save_pretrained(tmp_path, card=False)
    tensors = rio.read_tensors(tmp_path / "relation_matrix.safetensors")
    rewrite(tmp_path, {**tensors, "logits": torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="reproduce the relation matrix"):
        ClassRelationMatrix.from_pretrained(tmp_path)


def test_load_reads_only_safetensors_and_json(tmp_path, monkeypatch):
    saved(tmp_path)
    (tmp_path / "README.md").write_bytes(b"\xff\x00 not a card")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04 pickle")
    opened = []

    def spying(real):
        def spy(file, *args, **kwargs):
            if not isinstance(file, int):  # os.fdopen wraps an already opened descriptor
                opened.append(os.path.basename(os.fspath(file)))
            return real(file, *args, **kwargs)
        return spy

    monkeypatch.setattr("builtins.open", spying(open))
    monkeypatch.setattr("io.open", spying(open))  # pathlib opens through io.open
    monkeypatch.setattr("os.open", spying(os.open))  # the loader opens with O_NONBLOCK to check the file type
    back = ClassRelationMatrix.from_pretrained(tmp_path)
    assert torch.equal(back.matrix, HAND)
    assert set(opened) == {"config.json", "relation_matrix.safetensors"}


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    saved(tmp_path, method="old")
    before = (tmp_path / "config.json").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fdopen", broken)  # the file layer writes through os.fdopen
    with pytest.raises(OSError, match="disk full"):
        ClassRelationMatrix(HAND, NAMES, method="new").save_pretrained(tmp_path, card=False)
    assert (tmp_path / "config.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.json", "relation_matrix.safetensors"]  # no temp files left


def test_subset_renormalises_rows_in_given_order():
    crm = ClassRelationMatrix(HAND, NAMES, method="ols")
    sub = crm.subset(["truck", "cat", "car"])
    idx = [3, 0, 2]
    for i, a in enumerate(idx):
        total = sum(float(HAND[a, b]) for b in idx)
        for j, b in enumerate(idx):
            assert math.isclose(float(sub.matrix[i, j]), float(HAND[a, b]) / total, rel_tol=1e-6)
    assert sub.label_names == ["truck", "cat", "car"] and sub.method == "ols" and sub.extra["subset_of"] == 4


def test_subset_re_softmaxes_lls_logits():
    loss = random_lls()
    sub = ClassRelationMatrix.from_loss(loss, NAMES).subset(["dog", "truck"])
    q = loss.logits.detach().double()
    for i, a in enumerate([1, 3]):
        denom = math.exp(q[a, 1]) + math.exp(q[a, 3])
        for j, b in enumerate([1, 3]):
            assert math.isclose(float(sub.matrix[i, j]), math.exp(q[a, b]) / denom, rel_tol=1e-5)
    assert torch.equal(sub.logits, loss.logits.detach()[[1, 3]][:, [1, 3]]) and sub.logits_kind == "softmax"


def test_subset_lspp_keeps_zero_diagonal():
    loss = create_loss("lspp", 4)
    with torch.no_grad():
        loss.logits.copy_(torch.randn(4, 4))
    sub = ClassRelationMatrix.from_loss(loss, NAMES).subset(["cat", "car", "truck"])
    c = loss.logits.detach().double()[[0, 2, 3]][:, [0, 2, 3]]
    expected = torch.tensor([[0.0 if j == i else math.exp(c[i, j]) for j in range(3)] for i in range(3)],
                            dtype=torch.float64)
    expected = expected / expected.sum(-1, keepdim=True)
    assert torch.allclose(sub.matrix.double(), expected, atol=1e-6) and torch.all(sub.matrix.diagonal() == 0)


def test_subset_empty_row_becomes_uniform_with_warning():
    m = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.3, 0.3, 0.4]])
    with pytest.warns(UserWarning, match="no mass"):
        sub = ClassRelationMatrix(m, ["a", "b", "c"]).subset(["a", "c"])
    assert sub.matrix.tolist() == [[0.0, 1.0], [pytest.approx(3 / 7), pytest.approx(4 / 7)]]


def test_subset_unknown_name():
    with pytest.raises(ValueError, match="unknown: \\['bus'\\]"):
        ClassRelationMatrix(HAND, NAMES).subset(["cat", "bus"])


def test_top_related_and_label_check():
    crm = ClassRelationMatrix(HAND, NAMES)
    assert crm.top_related(2) == [[("dog", pytest.approx(0.6)), ("truck", pytest.approx(0.25))],
                                  [("cat", pytest.approx(0.5)), ("car", pytest.approx(0.2))],
                                  [("truck", pytest.approx(0.6)), ("dog", pytest.approx(0.08))],
                                  [("car", pytest.approx(0.7)), ("dog", pytest.approx(0.15))]]
    crm.check_label_names(list(NAMES))
    with pytest.raises(ValueError, match="Expected label names .* but got .*subset"):
        crm.check_label_names(["dog", "cat"])
    with pytest.raises(ValueError, match="Expected label names .* but got .*learned on this dataset"):
        crm.check_label_names(["cat", "dog", "car", "bus"])


def test_trainer_output_dir_resolves_to_artifact_subfolder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "id2label": {"0": "cat"}}))
    ClassRelationMatrix(HAND, NAMES, method="lls").save_pretrained(tmp_path / "relation_matrix", card=False)
    assert ClassRelationMatrix.from_pretrained(tmp_path).label_names == NAMES
    assert ClassRelationMatrix.from_pretrained(tmp_path.parent, subfolder=tmp_path.name).method == "lls"
    (tmp_path / "relation_matrix" / "config.json").rename(tmp_path / "relation_matrix" / "other.json")
    rio.write_tensors(tmp_path / "relation_matrix.safetensors", {"relation_matrix": HAND}, {})
    with pytest.raises(FileNotFoundError, match="Expected a class-relation matrix in .* it holds a model trained"):
        ClassRelationMatrix.from_pretrained(tmp_path)


def test_saved_files_are_readable_like_any_new_file(tmp_path) -> None:
    """The atomic writer's temporary file is private (0600); the file put in place gets 0666 less the umask."""
    old = os.umask(0o022)
    try:
        ClassRelationMatrix(HAND, NAMES, method="lls").save_pretrained(tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {name: 0o644 for name in modes} and "config.json" in modes
