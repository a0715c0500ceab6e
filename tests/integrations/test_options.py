"""`RelationOptions`, the one spec both integrations map their flags onto: checks, building, the matrix's param
group, and `UpdatePeriod` (refreshes counted in optimizer steps)."""
from __future__ import annotations

import pytest
import torch

from hf_labelsmooth import ClassRelationMatrix, create_loss
from hf_labelsmooth.optim import default_relation_lr
from hf_labelsmooth.options import RelationOptions, UpdatePeriod

K = 4
NAMES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("options,match", [
    (RelationOptions(method="focal"), r"Expected --m in \[.*'ols'.*\] but got 'focal'"),
    (RelationOptions(method="ls", update_every=5), "Expected --every >= 1 with a method that refreshes on a period"),
    (RelationOptions(method="ols", update_every=0), "Expected --every >= 1 .* but got 0"),
    (RelationOptions(method="lls", update_every=5), "refreshes on a period .*--top-n None"),
    (RelationOptions(method="ls", top_n=2), r"Expected --top-n >= 1 with a method in \[.*\] but got 2"),
    (RelationOptions(method="relation_prior"), "Expected `prior` together with a --m that takes a saved matrix"),
    (RelationOptions(method="ols", prior="m"), "Expected `prior` together"),
    (RelationOptions(method="relation_prior", prior=" "), "Expected `prior` to be a folder .* empty string"),
    (RelationOptions(method="ls", alpha=1.5), r"Expected `alpha` in \[0, 1\] but got 1.5"),
    (RelationOptions(method="ce", alpha=0.1), "Expected no `alpha` with method 'ce'.*--m ls"),
    (RelationOptions(method="lls", relation_lr=float("nan")), "Expected `relation_lr` to be a finite number >= 0"),
])
def test_check_refuses_with_the_callers_spelling(options: RelationOptions, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        options.check({"method": "--m", "update_every": "--every", "top_n": "--top-n"})


def test_options_a_method_learns_nothing_from_warn() -> None:
    with pytest.warns(UserWarning, match="`relation_weight_decay`=0.1 has no effect with method 'ols'"):
        RelationOptions(method="ols", relation_weight_decay=0.1).check()
    RelationOptions(method="lspp", top_n=2, update_every=3, relation_lr=0.1).check()  # accepted silently


def test_build_leaves_the_period_to_the_training_loop_and_checks_the_prior(tmp_path) -> None:
    ols = RelationOptions(method="ols", alpha=0.3, update_every=7).build(K, NAMES, reduction="none")
    assert (ols.alpha, ols.update_every, ols.reduction) == (0.3, None, "none")
    lls = RelationOptions(method="lls", top_n=2, update_every=7).build(K, NAMES)
    assert (lls.top_n, lls.rows.refresh_every) == (2, None)
    ClassRelationMatrix.from_loss(create_loss("ols", K), NAMES).save_pretrained(tmp_path / "m")
    prior = RelationOptions(method="relation_prior", prior=str(tmp_path / "m")).build(K, NAMES)
    torch.testing.assert_close(prior.relation_matrix(), torch.full((K, K), 1.0 / K))
    with pytest.raises(ValueError, match="Expected label names"):
        RelationOptions(method="relation_prior", prior=str(tmp_path / "m")).build(K, ["a", "b", "c", "x"])


def test_param_groups_default_to_the_optimizers_relation_lr_and_the_methods_weight_decay() -> None:
    lspp, ols = create_loss("lspp", K), create_loss("ols", K)
    group, = RelationOptions(method="lspp").param_groups(lspp, torch.optim.SGD, 0.01, network_weight_decay=0.05)
    assert (group["lr"], group["weight_decay"]) == (default_relation_lr(torch.optim.SGD, 0.01), 0.05)
    group, = RelationOptions(method="lspp", relation_lr=0.2, relation_weight_decay=0.0).param_groups(
        lspp, torch.optim.AdamW, 0.01, network_weight_decay=0.05)
    assert (group["lr"], group["weight_decay"]) == (0.2, 0.0)
    assert RelationOptions(method="ols").param_groups(ols, torch.optim.AdamW, 0.01, 0.0) == []


def _fed_ols() -> torch.nn.Module:
    loss = create_loss("ols", K)
    loss.train()
    logits = torch.eye(K).repeat(2, 1) * 5 + torch.arange(K).float() * 0.5  # all correct, rows not uniform
    loss(logits, torch.arange(K).repeat(2))
    return loss


def test_update_period_swaps_at_multiples_of_the_optimizer_step_and_not_at_the_epoch_end() -> None:
    loss = _fed_ols()
    period, uniform = UpdatePeriod(loss, 3), loss.matrix.clone()
    assert not period.after_step(2) and not period.at_epoch_end()
    torch.testing.assert_close(loss.matrix, uniform)
    assert period.after_step(3)
    assert not torch.allclose(loss.matrix, uniform)


def test_without_a_period_the_epoch_end_swaps() -> None:
    loss = _fed_ols()
    period, uniform = UpdatePeriod(loss, None), loss.matrix.clone()
    assert not period.after_step(3)
    torch.testing.assert_close(loss.matrix, uniform)
    assert period.at_epoch_end()
    assert not torch.allclose(loss.matrix, uniform)
