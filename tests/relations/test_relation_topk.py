"""Sparse losses above the dense size write their top-N table (`RelationTopK`), which loads back and is reused."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from hf_labelsmooth import create_loss
from hf_labelsmooth.cli import main as cli_main
from hf_labelsmooth.losses.sparse.slots import DENSE_MATRIX_LIMIT
from hf_labelsmooth.relations import RelationTopK, load_relations, needs_topk_artifact, save_relations
from hf_labelsmooth.relations.constants import TOPK_FILE

K = DENSE_MATRIX_LIMIT + 7


def _trained_sparse(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    loss = create_loss(name, num_classes=K, top_n=4).train()
    z = torch.randn(16, K) * 3
    loss(z.requires_grad_(), torch.randint(0, K, (16,))).backward()
    if loss.requires_optimizer:
        with torch.no_grad():
            for p in loss.parameters():
                p -= 10.0 * p.grad
    loss.end_epoch()
    return loss


@pytest.mark.parametrize("name", ["ols", "lls"])
def test_large_sparse_loss_writes_its_top_n_table(tmp_path, name: str) -> None:
    loss = _trained_sparse(name)
    names = [f"c{i}" for i in range(K)]
    assert needs_topk_artifact(loss) and not needs_topk_artifact(create_loss(name, num_classes=K))
    folder = tmp_path / "relation_matrix"
    save_relations(loss, names, folder, epochs=1)
    path = folder / TOPK_FILE
    indices, values = loss.relation_topk()
    with safe_open(str(path), "pt") as f:
        assert torch.equal(f.get_tensor("indices"), indices) and torch.equal(f.get_tensor("values"), values)
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == name and config["top_n"] == 4 and config["label_names"] == names
    assert config["artifact"] == "topk" and config["epochs"] == 1
    assert tuple(indices.shape) == (K, 4) and bool((values >= 0).all())
    assert not (folder / "relation_matrix.safetensors").exists()


def test_top_n_table_loads_back_and_serves_as_a_prior(tmp_path, capsys) -> None:
    loss = _trained_sparse("ols")
    names = [f"c{i}" for i in range(K)]
    save_relations(loss, names, tmp_path)
    table = load_relations(tmp_path)
    assert isinstance(table, RelationTopK) and table.top_n == 4 and table.label_names == names
    indices, values = loss.relation_topk()
    assert torch.equal(table.indices, indices) and torch.equal(table.values, values)
    rows = table.rows(torch.tensor([0, 5]))  # stored entries, the rest of the row uniform, sums 1
    torch.testing.assert_close(rows.sum(-1), torch.ones(2))
    torch.testing.assert_close(rows[1, indices[5]], values[5])
    prior = create_loss("relation_prior", num_classes=K, matrix=table, alpha=1.0)
    z = torch.randn(2, K)
    expected = -(rows * z.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(prior(z, torch.tensor([0, 5])), expected)
    assert cli_main(["show", str(tmp_path), "--top", "2"]) == 0
    assert f"K={K}" in capsys.readouterr().out


def test_label_names_must_match_k(tmp_path) -> None:
    with pytest.raises(ValueError, match=f"Expected {K} label names"):
        save_relations(_trained_sparse("ols"), ["a", "b"], tmp_path)


@pytest.mark.parametrize("name", ["lspp", "lls"])
def test_small_sparse_learnable_loss_saves_its_dense_matrix_without_slot_logits(tmp_path, name: str) -> None:
    from hf_labelsmooth import ClassRelationMatrix

    loss = create_loss(name, num_classes=6, top_n=2)
    with torch.no_grad():
        loss.logits.normal_()
    matrix = ClassRelationMatrix.from_loss(loss, label_names=list("abcdef"))
    assert matrix.logits is None  # K×N slot logits are not K×K relation logits
    matrix.save_pretrained(tmp_path)
    assert torch.allclose(ClassRelationMatrix.from_pretrained(tmp_path).matrix, loss.relation_matrix(), atol=1e-6)
