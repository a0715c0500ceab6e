"""The stock `transformers.Trainer` with `hf_labelsmooth.compute_loss_func` equals `LabelSmoothingTrainer`: losses,
matrix, weights, gradient accumulation, resume, and what it writes (tiny ConvNeXt on digits)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from hf_labelsmooth import LabelSmoothingTrainer, compute_loss_func, list_losses, load_relations
from tests.support.stock_trainer import stock_interrupted_then_resumed, stock_trainer
from tests.support.trainer_digits import DigitsDataset, digits_args, interrupted_then_resumed, tiny_model, train_digits

FAST = ("ols", "lls")  # statistics and a learnable matrix: the other methods run with the slow tests
METHODS = [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in list_losses() if m != "relation_prior"]


def losses(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def assert_same_run(ours, stock) -> None:
    assert losses(stock) == pytest.approx(losses(ours), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(stock.compute_loss_func.loss.relation_matrix(), ours.relation_loss.relation_matrix())
    for (name, p), q in zip(ours.model.named_parameters(), stock.model.parameters()):
        torch.testing.assert_close(q, p, msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_stock_trainer_equals_label_smoothing_trainer(tmp_path, method):
    """Gradient accumulation 2 and an evaluation every 2 steps (which must not count OLS statistics)."""
    extra = dict(gradient_accumulation_steps=2, eval_strategy="steps", eval_steps=2)
    ours = LabelSmoothingTrainer(model=tiny_model(), args=digits_args(str(tmp_path / "ours"), method, 16, **extra),
                                 train_dataset=DigitsDataset(64), eval_dataset=DigitsDataset(32, offset=64))
    ours.train()
    stock = stock_trainer(str(tmp_path / "stock"), method, batch=16, n_train=64,
                          eval_dataset=DigitsDataset(32, offset=64), **extra)
    stock.train()
    assert_same_run(ours, stock)
    evals = [h["eval_loss"] for h in stock.state.log_history if "eval_loss" in h]
    assert evals and evals == pytest.approx([h["eval_loss"] for h in ours.state.log_history if "eval_loss" in h])


def test_accumulation_equals_one_large_batch(tmp_path):
    """16 × 2 accumulated steps give the weights and matrix of batches of 32."""
    big = stock_trainer(str(tmp_path / "big"), "lls", batch=32, n_train=64)
    big.train()
    accumulated = stock_trainer(str(tmp_path / "acc"), "lls", batch=16, n_train=64, gradient_accumulation_steps=2)
    accumulated.train()
    assert losses(accumulated) == pytest.approx(losses(big), rel=1e-5)
    torch.testing.assert_close(accumulated.compute_loss_func.loss.relation_matrix(),
                               big.compute_loss_func.loss.relation_matrix(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", [pytest.param("ols", marks=pytest.mark.slow), "lls"])
def test_resume_equals_label_smoothing_trainer_and_uninterrupted(tmp_path, method):
    """Crash at the step-3 checkpoint, resume in a new Trainer: the run ends where LabelSmoothingTrainer's does."""
    ours = interrupted_then_resumed(str(tmp_path / "ours"), method, 16, 64, 3)
    stock = stock_interrupted_then_resumed(str(tmp_path / "stock"), method, 16, 64, 3)
    uninterrupted = train_digits(str(tmp_path / "plain"), method, batch=16, n_train=64)
    torch.testing.assert_close(stock.compute_loss_func.loss.relation_matrix(),
                               uninterrupted.relation_loss.relation_matrix())
    assert_same_run(ours, stock)
    checkpoint = tmp_path / "stock" / "checkpoint-3"
    ours_state = load_file(tmp_path / "ours" / "checkpoint-3" / "relation_loss.safetensors")
    stock_state = load_file(checkpoint / "relation_loss.safetensors")
    assert stock_state.keys() == ours_state.keys()
    for key in ours_state:
        torch.testing.assert_close(stock_state[key], ours_state[key])
    assert (checkpoint / "relation_optimizer.safetensors").is_file() == (method == "lls")
    assert load_relations(checkpoint / "relation_matrix").label_names == [str(i) for i in range(10)]


def test_matrix_written_at_end_and_reused_as_prior(tmp_path):
    trainer = stock_trainer(str(tmp_path / "lls"), "lls", batch=32, n_train=64)
    trainer.train()
    saved = load_relations(tmp_path / "lls" / "relation_matrix")
    torch.testing.assert_close(saved.matrix, trainer.compute_loss_func.loss.relation_matrix())
    ours = train_digits(str(tmp_path / "ours"), "lls", batch=32, n_train=64)
    ours.save_relations()
    assert saved.training == load_relations(tmp_path / "ours" / "relation_matrix").training  # how R was trained
    assert saved.training["optimizer"] == "AdamW (Adam-like)" and saved.training["relation_lr"] > 0
    assert ours.relation_loss.spec.name == saved.method
    prior = stock_trainer(str(tmp_path / "prior"), "relation_prior", batch=32, n_train=64,
                          loss_options={"prior": str(tmp_path / "lls")})
    torch.testing.assert_close(prior.compute_loss_func.loss.relation_matrix(), saved.matrix)


def test_resume_from_outside_output_dir_is_refused(tmp_path):
    stock_interrupted_then_resumed(str(tmp_path / "run"), "ols", 16, 64, 3)
    moved = tmp_path / "elsewhere"
    (tmp_path / "run" / "checkpoint-3").rename(moved)
    trainer = stock_trainer(str(tmp_path / "run"), "ols", batch=16, n_train=64)
    with pytest.raises(ValueError, match="resume from a checkpoint inside --output_dir"):
        trainer.train(resume_from_checkpoint=str(moved))


def test_missing_callback_and_bad_arguments_are_refused(tmp_path):
    from transformers import Trainer

    from tests.support.stock_trainer import stock_args

    loss_func = compute_loss_func("ls", num_labels=10)
    trainer = Trainer(model=tiny_model(), args=stock_args(str(tmp_path), "ls", 16), train_dataset=DigitsDataset(32),
                      compute_loss_func=loss_func)
    with pytest.raises(RuntimeError, match=r"callbacks=\[f.callback\]"):
        trainer.train()
    with pytest.raises(ValueError, match="num_labels=3"):
        wrong = compute_loss_func("ls", num_labels=3)
        Trainer(model=tiny_model(), args=stock_args(str(tmp_path), "ls", 16), compute_loss_func=wrong,
                callbacks=[wrong.callback])
    with pytest.raises(ValueError, match="label_smoothing_factor"):
        stock_trainer(str(tmp_path), "ls", label_smoothing_factor=0.1)
    with pytest.raises(ValueError, match="Expected `alpha` in"):
        compute_loss_func("ls", num_labels=10, alpha=2.0)
    with pytest.raises(TypeError, match="Expected options among"):
        compute_loss_func("ls", num_labels=10, label_smoothing_alpha=0.1)


def test_soft_targets_divide_the_trainer_count_by_k(tmp_path):
    """The Trainer counts every entry of soft labels [B, K] (B·K items): the loss is still the batch mean."""
    trainer = stock_trainer(str(tmp_path), "ls")
    loss_func = trainer.compute_loss_func
    trainer.model.train()
    logits = torch.randn(6, 10)
    soft = torch.softmax(torch.randn(6, 10), dim=1)
    value = loss_func({"logits": logits}, soft, num_items_in_batch=torch.tensor(60))
    torch.testing.assert_close(value, loss_func.loss(logits, soft).mean())
    ids = torch.randint(0, 10, (6,))
    torch.testing.assert_close(loss_func({"logits": logits}, ids, num_items_in_batch=torch.tensor(12)),
                               loss_func.loss(logits, ids).sum() / 12)
