"""Sparse losses above the dense size write their top-N table (`relation_topk`), in both integrations."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from hf_labelsmooth import create_loss
from hf_labelsmooth.hf.loss_state import write_relation_matrix
from hf_labelsmooth.losses._sparse import DENSE_MATRIX_LIMIT
from hf_labelsmooth.relation_topk import TOPK_FILE, needs_topk_artifact
from hf_labelsmooth.timm_integration_train import save_relation_matrix

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


@pytest.mark.parametrize("writer", ["trainer", "timm"])
@pytest.mark.parametrize("name", ["ols", "lls"])
def test_large_sparse_loss_writes_its_top_n_table(tmp_path, name: str, writer: str) -> None:
    loss = _trained_sparse(name)
    names = [f"c{i}" for i in range(K)]
    assert needs_topk_artifact(loss) and not needs_topk_artifact(create_loss(name, num_classes=K))
    if writer == "trainer":
        path = write_relation_matrix(loss, names, tmp_path, epochs=1)
    else:
        path = save_relation_matrix(loss, names, tmp_path / "relation_matrix", epochs=1)
    assert path.name == TOPK_FILE
    indices, values = loss.relation_topk()
    with safe_open(str(path), "pt") as f:
        assert torch.equal(f.get_tensor("indices"), indices) and torch.equal(f.get_tensor("values"), values)
        meta = f.metadata()
    assert meta["method"] == name and meta["top_n"] == "4" and json.loads(meta["label_names"]) == names
    assert tuple(indices.shape) == (K, 4) and bool((values >= 0).all())


def test_label_names_must_match_k(tmp_path) -> None:
    with pytest.raises(ValueError, match=f"Expected {K} label names"):
        write_relation_matrix(_trained_sparse("ols"), ["a", "b"], tmp_path)


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
