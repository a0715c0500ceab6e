"""`MethodSpec`: one frozen value of facts per method, checked by `register_loss`; contradictions fail with the fix."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import hf_labelsmooth
from hf_labelsmooth.losses import LearnableRelationLoss, MethodCard, MethodSpec, RelationLoss, registry
from hf_labelsmooth.losses.functional import cross_entropy, mix, one_hot, relation_targets
from hf_labelsmooth.losses.kernels import fused_lls
from hf_labelsmooth.losses.storage import DenseLogits, TopNLogits


@pytest.fixture(autouse=True)
def _registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every registration of a test is undone after it."""
    monkeypatch.setattr(registry, "_LOSSES", dict(registry._LOSSES))


class Plain(RelationLoss):
    """No parameter, no storage, no options: what a contradicting spec is checked against."""

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        assert target is not None
        return cross_entropy(target, logits.log_softmax(dim=-1))

    def relation_matrix(self) -> Tensor:
        return torch.eye(self.num_classes)


class WithParameter(Plain):
    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        self.scale = nn.Parameter(torch.ones(()))


class IgnoresTopN(Plain):
    """Takes `top_n` but holds no top-N storage."""

    def __init__(self, num_classes: int, alpha: float | None = None, top_n: int | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)


class NeedsOption(Plain):
    def __init__(self, num_classes: int, temperature: float, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)


@pytest.mark.parametrize(("facts", "fix"), [
    ({"relation_weight_decay": 0.0}, "drop it or set requires_optimizer=True"),
    ({"requires_optimizer": True, "relation_weight_decay": -1.0}, "give one >= 0"),
    ({"learns_relations": True, "requires_optimizer": True, "logits_kind": "sigmoid"}, "use one of"),
    ({"logits_kind": "softmax"}, "set both or drop logits_kind"),
    ({"period_option": "update_every"}, "set learns_relations=True or drop it"),
    ({"learns_relations": True, "period_option": "every", "period_needs_top_n": True}, "set both or drop it"),
    ({"default_alpha": 1.5}, "give one in [0, 1]"),
    ({"card": "LLS"}, "give a MethodCard"),
])
def test_contradicting_facts_are_refused_when_the_spec_is_written(facts: dict, fix: str) -> None:
    with pytest.raises(ValueError, match=r"Expected consistent method facts for 'toy' but got .*" + fix.replace(
            "[", r"\[").replace("]", r"\]")):
        MethodSpec(name="toy", **facts)


@pytest.mark.parametrize(("cls", "facts", "fix"), [
    (Plain, {"supports_top_n": True}, "take the option `top_n` for supports_top_n=True"),
    (Plain, {"learns_relations": True, "period_option": "update_every"}, "take the option `update_every`"),
    (Plain, {"requires_matrix": True}, "take the option `matrix`"),
    (Plain, {"requires_optimizer": True}, "set it to match"),
    (WithParameter, {}, r"requires_optimizer=True for .*owns trainable parameters \['scale'\]"),
    (IgnoresTopN, {"supports_top_n": True}, "give it sparse storage or set supports_top_n=False"),
    (WithParameter, {"requires_optimizer": True, "learns_relations": True, "logits_kind": "softmax"},
     "to hold a K×K parameter `logits`"),
    (NeedsOption, {}, "give every other option a default"),
])
def test_facts_that_contradict_the_class_are_refused_at_registration(cls: type, facts: dict, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        registry.register_loss(MethodSpec(name="toy", **facts))(cls)
    assert not hf_labelsmooth.is_loss("toy") and cls.spec.name == ""  # nothing registered, nothing left behind


def test_requires_optimizer_on_a_loss_without_parameters_names_the_fix() -> None:
    with pytest.raises(ValueError) as error:
        registry.register_loss(MethodSpec(name="toy", requires_optimizer=True))(Plain)
    assert str(error.value).startswith("Expected requires_optimizer=False for Plain ('toy'), which owns trainable "
                                       "parameters [], but got requires_optimizer=True; set it to match")


def test_facts_written_as_class_attributes_are_refused_with_the_fix() -> None:
    legacy = type("Legacy", (Plain,), {"default_alpha": 0.2, "learns_relations": True})
    with pytest.raises(ValueError, match=r"class attributes \['default_alpha', 'learns_relations'\] on Legacy; move "
                                         r"them into register_loss\(MethodSpec\(\.\.\., default_alpha=\.\.\.\)\)"):
        registry.register_loss(MethodSpec(name="toy"))(legacy)
    with pytest.raises(TypeError, match=r"Expected a MethodSpec but got 'toy'"):
        registry.register_loss("toy")  # type: ignore[arg-type]


def test_a_class_takes_one_name_and_a_name_one_class() -> None:
    registry.register_loss(MethodSpec(name="toy"))(Plain)
    with pytest.raises(ValueError, match="Expected one name per class but got 'toy2'"):
        registry.register_loss(MethodSpec(name="toy2"))(Plain)
    with pytest.raises(ValueError, match="Expected a new loss name but got 'toy'"):
        registry.register_loss(MethodSpec(name="toy"))(WithParameter)
    with pytest.raises(ValueError, match="Expected a RelationLoss subclass"):
        registry.register_loss(MethodSpec(name="toy3"))(nn.Module)  # type: ignore[type-var]


class ToyTopN(LearnableRelationLoss):
    """A sparse-capable method in one class: LLS's kernels on LLS's targets, CE on soft targets."""

    def compute(self, logits: Tensor, target: Tensor | None, labels: Tensor | None) -> Tensor:
        if labels is not None:
            return self.rows.hard_loss(fused_lls, logits, labels, self.alpha)
        assert target is not None
        return cross_entropy(mix(target, relation_targets(target, None, self.relation_rows), self.alpha),
                             logits.log_softmax(dim=-1))


TOY_SPEC = MethodSpec(name="toy_top_n", default_alpha=0.3, learns_relations=True, requires_optimizer=True,
                      relation_weight_decay=0.0, supports_top_n=True, logits_kind="softmax",
                      period_option="refresh_every", period_needs_top_n=True,
                      card=MethodCard(title="Toy", description="A toy method with top-N rows."))


def test_a_toy_method_reaches_the_registry_with_its_facts() -> None:
    registry.register_loss(TOY_SPEC)(ToyTopN)
    cls = hf_labelsmooth.get_loss_class("toy_top_n")
    assert cls is ToyTopN and cls.spec is TOY_SPEC
    assert "toy_top_n" in hf_labelsmooth.list_losses(learns_relations=True, supports_top_n=True)
    assert "toy_top_n" not in hf_labelsmooth.list_losses(learns_relations=False)
    assert "toy_top_n 0.3" in registry.describe_defaults()
    assert (cls.default_alpha, cls.relation_weight_decay, cls.logits_kind) == (0.3, 0.0, "softmax")  # aliases
    assert not cls.spec.has_update_period(None) and cls.spec.has_update_period(4)
    dense, sparse = (hf_labelsmooth.create_loss("toy_top_n", 6, **kw) for kw in ({}, {"top_n": 2}))
    assert dense.alpha == 0.3 and isinstance(dense.rows, DenseLogits) and isinstance(sparse.rows, TopNLogits)
    assert sparse.no_weight_decay() == {"logits", "tail_logits"} and sparse.spec is TOY_SPEC
    y = torch.tensor([0, 1, 5])
    for loss in (dense, sparse):  # the fused class-id path equals the plain formula on R's rows
        z = torch.randn(3, 6)
        t = mix(one_hot(y, 6), loss.relation_rows(y), 0.3)
        expected = ((t - z.softmax(-1)) * (t.log() - z.log_softmax(-1))).sum(-1) / 2
        torch.testing.assert_close(loss.eval()(z, y), expected.mean())


def test_every_registered_spec_is_frozen_and_read_by_the_aliases() -> None:
    for name in hf_labelsmooth.list_losses():
        cls = hf_labelsmooth.get_loss_class(name)
        assert cls.spec.name == name and cls.name == name and not cls.spec.contradictions()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls.spec.default_alpha = 0.5  # type: ignore[misc]


def test_readme_and_contributing_list_every_fact_of_the_spec() -> None:
    root = Path(__file__).resolve().parents[2]
    for doc in (root / "README.md", root / "docs" / "CONTRIBUTING.md"):
        text = doc.read_text()
        missing = [f.name for f in dataclasses.fields(MethodSpec) if f.name != "name" and f"`{f.name}`" not in text]
        assert missing == [], f"{doc.name} does not list {missing}"
