"""Unit tests of hf_labelsmooth.integrations.timm: the loss factory, the task, the matrix param group."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import timm.loss
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2

from hf_labelsmooth import RelationLoss
from hf_labelsmooth.integrations.timm import (RelationClassificationTask, RelationTrainableModule,
                                             add_relation_param_group, create_classification_loss,
                                             is_relation_loss_type, list_classification_loss_types)

K = 6
TIMM_CASES = [
    ("ce", {}), ("ce", {"smoothing": 0.2}), ("ce", {"soft_targets": True, "smoothing": 0.1}), ("bce", {}),
    ("bce", {"smoothing": 0.1, "bce_target_thresh": 0.2}), ("poly", {"smoothing": 0.1}), ("asl", {"smoothing": 0.1}),
    ("jsd", {"jsd_splits": 2, "smoothing": 0.1}), ("twoway", {"multi_label": True}), ("zlpr", {"multi_label": True}),
]


def _targets(kwargs: dict, batch: int = 8) -> torch.Tensor:
    if kwargs.get("multi_label"):
        return (torch.rand(batch, K) > 0.5).float()
    if kwargs.get("soft_targets"):
        return torch.rand(batch, K).softmax(-1)
    return torch.randint(0, K, (batch,))


@pytest.mark.parametrize("loss_type,kwargs", TIMM_CASES, ids=[f"{t}-{'-'.join(k)}" for t, k in TIMM_CASES])
def test_timm_types_delegate_unchanged(loss_type: str, kwargs: dict) -> None:
    ours = create_classification_loss(loss_type, **kwargs)
    theirs = timm.loss.create_classification_loss(loss_type, **kwargs)
    assert type(ours) is type(theirs)
    assert not isinstance(ours, RelationLoss)
    logits, target = torch.randn(8, K), _targets(kwargs)
    torch.testing.assert_close(ours(logits, target), theirs(logits, target))


def test_timm_errors_pass_through() -> None:
    with pytest.raises(ValueError, match="jsd_splits"):
        create_classification_loss("jsd")


@pytest.mark.parametrize("name,alpha", [("ls", 0.1), ("ols", 0.5), ("lspp", 0.1), ("lls", 0.1)])
def test_relation_types_build_our_losses_with_default_alpha(name: str, alpha: float) -> None:
    loss = create_classification_loss(name, num_classes=K)
    assert isinstance(loss, RelationLoss) and loss.name == name and loss.alpha == alpha
    assert create_classification_loss(name, num_classes=K, alpha=0.3).alpha == 0.3
    assert is_relation_loss_type(name) and not is_relation_loss_type("ce")


def test_type_list_has_timm_then_ours() -> None:
    types = list_classification_loss_types()
    assert types[: len(timm.loss.LOSS_TYPES)] == list(timm.loss.LOSS_TYPES)
    assert {"ls", "ols", "lspp", "lls", "relation_prior"} <= set(types) and types.count("ce") == 1


@pytest.mark.parametrize("soft", [False, True])
def test_smoothing_with_relation_loss_is_refused(soft: bool) -> None:
    with pytest.raises(ValueError, match="Expected smoothing=0 .*--smoothing 0"):
        create_classification_loss("ols", num_classes=K, smoothing=0.1, soft_targets=soft)


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ValueError, match="Expected a loss type in"):
        create_classification_loss("nope", num_classes=K)
    with pytest.raises(ValueError, match="num_classes"):
        create_classification_loss("lls")
    with pytest.raises(ValueError, match="alpha=None for timm's loss type 'ce'"):
        create_classification_loss("ce", alpha=0.1)


def _mixup(x: torch.Tensor, y: torch.Tensor, smoothing: float, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    np.random.seed(seed)
    return Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=smoothing, num_classes=K)(x.clone(), y)


def test_ls_on_unsmoothed_mixup_equals_timm_smoothed_mixup() -> None:
    """Relation losses smooth the Mixup targets themselves: ls(α) on Mixup(smoothing=0) == timm on Mixup(α)."""
    x, y, logits = torch.randn(8, 3, 8, 8), torch.randint(0, K, (8,)), torch.randn(8, K)
    _, soft = _mixup(x, y, 0.0)
    _, smoothed = _mixup(x, y, 0.1)
    ours = create_classification_loss("ls", num_classes=K, alpha=0.1, soft_targets=True)(logits, soft)
    torch.testing.assert_close(ours, SoftTargetCrossEntropy()(logits, smoothed))


@pytest.mark.parametrize("name", ["ols", "lspp", "lls"])
def test_relation_losses_accept_mixup_targets_and_train_the_matrix(name: str) -> None:
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, K, (8,))
    _, soft = _mixup(x, y, 0.0)
    loss_fn = create_classification_loss(name, num_classes=K, soft_targets=True)
    logits = torch.randn(8, K, requires_grad=True)
    loss = loss_fn(logits, soft)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    for p in loss_fn.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def _model() -> torch.nn.Module:
    return timm.create_model("test_efficientnet_gn", num_classes=K)


def test_task_puts_learnable_loss_in_trainable_module_and_keeps_it_out_of_the_eval_model() -> None:
    model, loss = _model(), create_classification_loss("lls", num_classes=K)
    task = RelationClassificationTask(model, loss, verbose=False)
    assert isinstance(task.trainable_module, RelationTrainableModule) and task.loss is loss
    assert task.get_eval_model() is model
    assert any(p is loss.logits for p in task.trainable_module.parameters())
    out = task(torch.randn(4, 3, 16, 16), torch.randint(0, K, (4,)))
    out["loss"].backward()
    assert out["output"].shape == (4, K) and loss.logits.grad is not None
    task.setup_ema(decay=0.5)
    assert task.get_eval_model(ema=True) is task.trainable_module_ema.module.model


def test_task_keeps_stateful_loss_outside_ddp_and_round_trips_its_state() -> None:
    model, loss = _model(), create_classification_loss("ols", num_classes=K, update_every=1000)
    task = RelationClassificationTask(model, loss, verbose=False)
    assert task.trainable_module is model and task.criterion is loss
    task.train()
    task(torch.randn(16, 3, 16, 16), torch.randint(0, K, (16,)))
    loss.accumulator.add_(torch.rand(K, K))
    loss.swap()
    state = task.get_checkpoint_state()
    assert set(state) == {"state_dict", "task_state"} and not any("criterion" in k for k in state["state_dict"])
    fresh_loss = create_classification_loss("ols", num_classes=K, update_every=1000)
    fresh = RelationClassificationTask(_model(), fresh_loss, verbose=False)
    fresh.load_checkpoint_state(state["state_dict"], state["task_state"])
    torch.testing.assert_close(fresh_loss.matrix, loss.matrix, rtol=0, atol=0)
    assert int(fresh_loss.steps) == int(loss.steps) == 1


def test_learnable_loss_buffers_are_kept_out_of_ddp_buffer_broadcast() -> None:
    loss = create_classification_loss("lls", num_classes=K)
    loss.add_state("accumulator", torch.zeros(K))
    wrapper = RelationTrainableModule(_model(), loss)
    ignored = set(wrapper._ddp_params_and_buffers_to_ignore)
    assert ignored == {"criterion.accumulator"}  # the model's buffers (if any) stay broadcast, as in timm


@pytest.mark.parametrize("name", ["lls", "ols"])
def test_compile_keeps_eval_model_checkpoint_keys_and_ddp_ignores(name: str) -> None:
    """task.compile (timm --torchcompile): the compiled step equals eager, the eval model is the compiled timm model,
    the loss state has unprefixed keys, and DDP (which wraps the compiled module) still skips the loss buffers."""
    torch.manual_seed(0)
    model, loss = _model(), create_classification_loss(name, num_classes=K, top_n=3)
    task = RelationClassificationTask(model, loss, verbose=False)
    eager_task = copy.deepcopy(task)
    task.compile(backend="aot_eager")
    assert task.get_eval_model()._orig_mod is model and task.loss is loss
    if name == "lls":
        ignored = set(task.trainable_module._ddp_params_and_buffers_to_ignore)
        assert ignored == {f"_orig_mod.criterion.{n}" for n, _ in loss.named_buffers()} and ignored
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, K, (4,))
    task.train(), eager_task.train()
    torch.testing.assert_close(task(x, y)["loss"], eager_task(x, y)["loss"])
    assert set(task.get_task_state()["criterion"]) == set(loss.state_dict())
    torch.testing.assert_close(task.get_eval_model()(x), model(x))


@pytest.mark.parametrize("weight_decay,expected", [(0.0, 0.0), (0.3, 0.3), (None, 0.05)])
def test_relation_param_group(weight_decay: float | None, expected: float) -> None:
    model, loss = _model(), create_classification_loss("lspp", num_classes=K)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=0.1, weight_decay=0.05)
    n_groups = len(optimizer.param_groups)
    group = add_relation_param_group(optimizer, loss, lr=0.7, weight_decay=weight_decay)
    assert len(optimizer.param_groups) == n_groups + 1 and group["params"] == [loss.logits]
    assert group["lr"] == 0.7 and group["weight_decay"] == expected
    assert add_relation_param_group(optimizer, create_classification_loss("ols", num_classes=K)) is None
    assert add_relation_param_group(optimizer, torch.nn.CrossEntropyLoss()) is None
