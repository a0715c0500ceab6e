"""Behaviour every registered loss shares: registry, hard/soft equivalence, autocast, state_dict, bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hf_labelsmooth
from tests.support.factories import make_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K = 6
CORE = ["ce", "ls", "ols", "lspp", "lls"]


def _train_a_little(loss: hf_labelsmooth.RelationLoss) -> None:
    params = list(loss.parameters())
    opt = torch.optim.SGD(params, lr=1.0) if params else None
    for step in range(3):
        y = torch.randint(0, K, (16,))
        z = (torch.randn(16, K) + 3 * F.one_hot(y, K)).requires_grad_(True)
        loss(z, y).backward()
        if opt:
            opt.step()
            opt.zero_grad()
    loss.end_epoch()


def test_registry_names_and_unknown_name() -> None:
    assert set(CORE) <= set(hf_labelsmooth.list_losses())
    assert hf_labelsmooth.list_losses("l*") == [n for n in hf_labelsmooth.list_losses() if n.startswith("l")]
    with pytest.raises(ValueError, match="Expected a loss name in .*'ols'.* but got 'olz'"):
        hf_labelsmooth.create_loss("olz", num_classes=K)


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_relation_matrix_is_row_stochastic_float32(name: str) -> None:
    loss = make_loss(name, K)
    assert loss.name == name
    r = loss.relation_matrix()
    assert r.shape == (K, K) and r.dtype == torch.float32
    assert torch.all(r >= 0) and torch.allclose(r.sum(-1), torch.ones(K), atol=1e-6)


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_one_hot_float_targets_equal_class_ids(name: str) -> None:
    loss = make_loss(name, K, alpha=None).eval()
    if loss.requires_optimizer:
        with torch.no_grad():
            loss.logits.normal_()
    z, y = torch.randn(8, K), torch.randint(0, K, (8,))
    assert torch.allclose(loss(z, y), loss(z, F.one_hot(y, K).float()), atol=1e-6)


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_in_float32(name: str, dtype: torch.dtype, device: str) -> None:
    loss = make_loss(name, K)
    z, y = (torch.randn(8, K) * 3).to(dtype), torch.randint(0, K, (8,))
    reference = make_loss(name, K)
    reference.load_state_dict(loss.state_dict())
    with torch.autocast(device, dtype=torch.bfloat16 if device == "cpu" else dtype):
        value = loss(z, y)
    assert value.dtype == torch.float32
    assert torch.allclose(value, reference(z.float(), y), rtol=1e-3)


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_state_dict_round_trip(name: str) -> None:
    loss = make_loss(name, K)
    _train_a_little(loss)
    y = torch.randint(0, K, (16,))
    loss(torch.randn(16, K) + 3 * F.one_hot(y, K), y)  # leaves a non-empty OLS accumulator
    restored = make_loss(name, K)
    restored.load_state_dict(loss.state_dict())
    for key, value in loss.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    z = torch.randn(4, K)
    assert torch.equal(restored(z, y[:4]), loss(z, y[:4]))
    loss.end_epoch(), restored.end_epoch()
    assert torch.equal(restored.relation_matrix(), loss.relation_matrix())


def test_ols_state_dict_holds_matrix_accumulator_counts_steps() -> None:
    keys = set(hf_labelsmooth.create_loss("ols", num_classes=K).state_dict())
    assert {"matrix", "accumulator", "counts", "steps"} <= keys


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_learnable_losses_declare_their_optimizer_need(name: str) -> None:
    loss = make_loss(name, K)
    assert loss.requires_optimizer == any(p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_registry_survives_reloading_a_loss_module(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """importlib.reload (notebook autoreload) re-registers the same class: the new one replaces the old entry."""
    import importlib
    import sys

    from hf_labelsmooth.losses import registry

    old = hf_labelsmooth.get_loss_class(name)
    module = sys.modules[old.__module__]
    names = hf_labelsmooth.list_losses()
    monkeypatch.setattr(registry, "_LOSSES", dict(registry._LOSSES))  # both restored after the test
    monkeypatch.setattr(module, old.__name__, old)
    importlib.reload(module)
    new = hf_labelsmooth.get_loss_class(name)
    assert new is not old and new is getattr(module, old.__name__) and hf_labelsmooth.list_losses() == names
    assert type(make_loss(name, K)) is new
    impostor = type(old.__name__, (old,), {"__module__": "elsewhere"})
    with pytest.raises(ValueError, match=f"Expected a new loss name but got '{name}'"):
        registry.register_loss(old.spec)(impostor)
