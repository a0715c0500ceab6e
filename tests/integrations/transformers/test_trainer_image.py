"""LabelSmoothingTrainer end to end on real images (scikit-learn digits) with a tiny ConvNeXt built from a config."""
from __future__ import annotations


import pytest
import torch
from transformers import ConvNextForImageClassification, TrainerState

from hf_labelsmooth import ClassRelationMatrix, LabelSmoothingTrainer
from hf_labelsmooth.integrations.transformers.checkpoint import save_loss_state
from tests.support.trainer_digits import (DigitsDataset, LABELS, digits_args, interrupted_then_resumed,
                                          record_loss_inputs, tiny_model, train_digits)

pytestmark = pytest.mark.slow
K = 10


def _losses(trainer: LabelSmoothingTrainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def _assert_decreases(trainer: LabelSmoothingTrainer) -> None:
    losses = _losses(trainer)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.05, f"loss did not decrease: {losses}"


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lspp", "lls"])
def test_each_method_trains(tmp_path, method: str) -> None:
    trainer = train_digits(str(tmp_path), method, n_train=256, num_train_epochs=3)
    _assert_decreases(trainer)
    matrix = trainer.relation_loss.relation_matrix()
    assert torch.allclose(matrix.sum(-1), torch.ones(K), atol=1e-5)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    if not trainer.relation_loss.learns_relations:  # ce / ls: no matrix, so no relation statistics in the logs
        assert not any("relation_entropy" in h or "relation_offdiag_mass" in h for h in logged)
    elif method != "ols":  # OLS swaps at the epoch end, after the last log
        assert logged[-1]["relation_offdiag_mass"] == pytest.approx(float((1 - matrix.diagonal()).mean()), abs=1e-5)
    else:
        assert all("relation_entropy" in h for h in logged)
    if method == "ce":
        assert torch.equal(matrix, torch.eye(K))
    if method in ("lspp", "lls"):  # learnable: moved away from the zero-logit initialisation
        start = torch.full((K, K), 1 / (K - 1)).fill_diagonal_(0) if method == "lspp" else torch.full((K, K), 1 / K)
        assert (matrix - start).abs().max() > 1e-3
        assert all(p.grad is None for p in trainer.relation_loss.parameters())  # zeroed after each step
    if method == "lspp":
        assert torch.all(matrix.diagonal() == 0)


@pytest.mark.parametrize("method", ["ce", "ls", "ols", "lspp", "lls", "relation_prior"])
def test_torch_compile_trains_each_method_as_eager(tmp_path, method: str) -> None:
    """--torch_compile (backend aot_eager: Dynamo + AOTAutograd, the inductor front end, fast on 2 cores): model and
    loss compiled, the same losses, weights and matrix as eager."""
    extra = {"relation_matrix": str(_saved_prior(tmp_path))} if method == "relation_prior" else {}
    eager = train_digits(str(tmp_path / "eager"), method, n_train=64, **extra)
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    compiled = train_digits(str(tmp_path / "compiled"), method, n_train=64, torch_compile=True,
                            torch_compile_backend="aot_eager", **extra)
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames  # it did compile
    assert compiled.relation_loss_fn is not compiled.relation_loss  # the compiled loss did the work
    torch.testing.assert_close(torch.tensor(_losses(compiled)), torch.tensor(_losses(eager)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled.relation_loss.relation_matrix(), eager.relation_loss.relation_matrix(),
                               rtol=1e-4, atol=1e-5)
    weights = eager.model.state_dict()
    for name, value in compiled.model.state_dict().items():
        torch.testing.assert_close(value, weights[name.removeprefix("_orig_mod.")], rtol=1e-4, atol=1e-5)


def _saved_prior(tmp_path) -> object:
    matrix = ClassRelationMatrix(torch.softmax(torch.randn(K, K), -1), label_names=LABELS, method="lls")
    matrix.save_pretrained(tmp_path / "prior", card=False)
    return tmp_path / "prior"


def test_ols_rows_are_averaged_correct_predictions(tmp_path) -> None:
    trainer = LabelSmoothingTrainer(model=tiny_model(), args=digits_args(str(tmp_path), "ols", 32, num_train_epochs=1),
                                    train_dataset=DigitsDataset(512))
    calls = record_loss_inputs(trainer)
    trainer.train()
    assert len(calls) == 16
    acc, counts = torch.zeros(K, K), torch.zeros(K)
    for logits, labels in calls:
        probs = logits.softmax(-1)
        ok = probs.argmax(-1) == labels
        acc.index_add_(0, labels[ok], probs[ok])
        counts.index_add_(0, labels[ok], torch.ones(int(ok.sum())))
    expected = torch.where(counts[:, None] > 0, acc / acc.sum(-1, keepdim=True).clamp_min(1e-12),
                           torch.full((K, K), 1 / K))
    assert counts.sum() > 0
    assert torch.allclose(trainer.relation_loss.matrix, expected, atol=1e-5)
    before = trainer.relation_loss.accumulator.clone()
    trainer.evaluate(DigitsDataset(64, offset=1000))  # evaluation must not touch the statistics
    assert torch.equal(trainer.relation_loss.accumulator, before)


def test_relation_update_every_counts_optimizer_steps(tmp_path) -> None:
    trainer = LabelSmoothingTrainer(
        model=tiny_model(), train_dataset=DigitsDataset(256),
        args=digits_args(str(tmp_path), "ols", 16, num_train_epochs=1, gradient_accumulation_steps=2,
                         relation_update_every=3))
    swaps = []
    trainer.relation_loss.swap = (lambda orig: lambda: (swaps.append(trainer.state.global_step), orig())[1])(
        trainer.relation_loss.swap)
    trainer.train()
    assert trainer.state.global_step == 8
    assert swaps == [3, 6]  # no swap at the epoch end either


def test_relation_optimizer(tmp_path) -> None:
    """The matrix has an optimizer of its own (the Trainer's class), outside the model's, with the same schedule."""
    for method, decay in (("lspp", 0.05), ("lls", 0.0)):
        trainer = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(64),
                                        args=digits_args(str(tmp_path), method, 32, weight_decay=0.05, relation_lr=0.3,
                                                         warmup_steps=2))
        optimizer = trainer.create_optimizer()
        assert not any(p is trainer.relation_loss.logits for g in optimizer.param_groups for p in g["params"])
        group, = trainer.relation_optimizer.optimizer.param_groups
        assert type(trainer.relation_optimizer.optimizer) is type(optimizer)
        assert group["params"] == [trainer.relation_loss.logits]
        assert group["lr"] == 0.3 and group["weight_decay"] == decay
        trainer.create_scheduler(num_training_steps=10)
        for _ in range(3):
            optimizer.step(), trainer.relation_optimizer.step()
            trainer.lr_scheduler.step(), trainer.relation_optimizer.step_schedule()
        ratio = trainer.relation_optimizer.optimizer.param_groups[0]["lr"] / 0.3
        assert ratio == pytest.approx(optimizer.param_groups[0]["lr"] / 5e-3) and 0 < ratio < 1
    (tmp_path / "old").mkdir()
    save_loss_state(trainer.relation_loss, tmp_path / "old")  # a checkpoint whose optimizer.pt held the matrix
    trainer.model.save_pretrained(tmp_path / "old")  # otherwise complete: weights and trainer state
    TrainerState(global_step=3).save_to_json(str(tmp_path / "old" / "trainer_state.json"))
    with pytest.raises(ValueError, match="relation_optimizer.safetensors .* earlier hf_labelsmooth"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "old"))


def test_bf16_on_cpu_finite(tmp_path) -> None:
    trainer = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(128),
                                    args=digits_args(str(tmp_path), "lls", 32, num_train_epochs=1, bf16=True))
    dtypes = []
    trainer.model.classifier.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer.relation_loss.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer.train()
    assert dtypes[:2] == [torch.bfloat16, torch.float32]  # the head ran under bf16 autocast, the loss in float32
    losses = _losses(trainer)
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert torch.isfinite(trainer.relation_loss.logits).all()


def test_export_writes_matrix_and_clean_model(tmp_path) -> None:
    trainer = train_digits(str(tmp_path / "run"), "lls", n_train=128, num_train_epochs=1)
    out = tmp_path / "final"
    trainer.save_model(str(out))
    _, info = ConvNextForImageClassification.from_pretrained(str(out), output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    assert not (out / "relation_matrix.safetensors").exists()  # one format: the artifact folder
    loaded = ClassRelationMatrix.from_pretrained(out / "relation_matrix")
    assert loaded.label_names == LABELS and loaded.method == "lls"
    assert torch.allclose(loaded.matrix, trainer.relation_loss.relation_matrix())
    assert torch.equal(ClassRelationMatrix.from_pretrained(out).matrix, loaded.matrix)  # the model folder resolves
    prior_args = digits_args(str(tmp_path / "p"), "ce", 32, relation_matrix=str(out / "relation_matrix"))
    prior = LabelSmoothingTrainer(model=tiny_model(), train_dataset=DigitsDataset(64), args=prior_args)
    assert prior.relation_loss.name == "relation_prior"
    assert torch.allclose(prior.relation_loss.relation_matrix(), loaded.matrix)
    model = tiny_model()
    model.config.id2label = {i: f"digit{i}" for i in range(K)}
    with pytest.raises(ValueError, match="label names"):
        LabelSmoothingTrainer(model=model, train_dataset=DigitsDataset(64),
                              args=digits_args(str(tmp_path / "q"), "relation_prior", 32,
                                               relation_matrix=str(out / "relation_matrix")))


@pytest.mark.parametrize("method", ["ols", "lls"])
def test_resume_mid_epoch_gives_same_matrix(tmp_path, method: str) -> None:
    full = train_digits(str(tmp_path / "full"), method, n_train=128, save_strategy="steps", save_steps=3)
    resumed = interrupted_then_resumed(str(tmp_path / "cut"), method, 32, 128, save_steps=3)  # 4 steps per epoch
    assert (tmp_path / "cut" / "checkpoint-3" / "relation_loss.safetensors").is_file()
    assert resumed.state.global_step == full.state.global_step == 8
    start = torch.full((K, K), 1 / K)
    assert (full.relation_loss.relation_matrix() - start).abs().max() > 1e-3
    assert torch.allclose(resumed.relation_loss.relation_matrix(), full.relation_loss.relation_matrix(), atol=1e-5)


@pytest.mark.parametrize("method", ["lspp", "lls"])
def test_gradient_accumulation_matches_one_large_batch(tmp_path, method: str) -> None:
    """Loss = sum / num_items_in_batch: 2 accumulated batches of 16 step exactly like one batch of 32."""
    large = train_digits(str(tmp_path / "large"), method, batch=32, n_train=128)
    accumulated = train_digits(str(tmp_path / "ga"), method, batch=16, n_train=128, gradient_accumulation_steps=2)
    assert accumulated.state.global_step == large.state.global_step == 8
    assert torch.allclose(accumulated.relation_loss.relation_matrix(), large.relation_loss.relation_matrix(), atol=1e-5)
    for (name, a), b in zip(accumulated.model.state_dict().items(), large.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert torch.allclose(torch.tensor(_losses(accumulated)), torch.tensor(_losses(large)), atol=1e-4)


def test_image_script_imagefolder(tmp_path, monkeypatch) -> None:
    """run_image_classification.py on digits PNG folders (imagefolder) with a local ConvNeXt checkpoint."""
    from tests.support.digits import DIGIT_NAMES, write_digits_imagefolder
    from tests.support.trainer_data import make_tiny_convnext
    from tests.support.trainer_scripts import check_method_result, run_script

    data = tmp_path / "digits"
    write_digits_imagefolder(data, 10, 5, size=32, names=DIGIT_NAMES)
    model = make_tiny_convnext(tmp_path / "model")
    argv = ["--model_name_or_path", str(model), "--train_dir", str(data / "train"), "--validation_dir",
            str(data / "validation"), "--augment", "False", "--output_dir", str(tmp_path / "out"),
            "--label_smoothing_method", "ols", "--num_train_epochs", "3", "--per_device_train_batch_size", "16",
            "--learning_rate", "3e-3"]
    result = run_script("run_image_classification", argv, monkeypatch)
    check_method_result("ols", result, num_classes=10)
    assert result["label_names"] == LABELS


def test_trainer_rejects_plain_arguments_and_loss_func(tmp_path) -> None:
    from transformers import TrainingArguments

    plain = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    with pytest.raises(TypeError, match="LabelSmoothingTrainingArguments"):
        LabelSmoothingTrainer(model=tiny_model(), args=plain)
    with pytest.raises(ValueError, match="compute_loss_func"):
        LabelSmoothingTrainer(model=tiny_model(), args=digits_args(str(tmp_path), "ls", 8),
                              compute_loss_func=lambda outputs, labels, num_items_in_batch=None: outputs.logits.sum())


def test_relation_top_n_trains_a_sparse_matrix_and_writes_it(tmp_path) -> None:
    trainer = train_digits(str(tmp_path), "lspp", n_train=128, num_train_epochs=2, relation_top_n=3)
    loss = trainer.relation_loss
    assert loss.top_n == 3 and tuple(loss.logits.shape) == (K, 3)  # K×N slot logits, not K×K
    assert (loss.logits.detach().abs().max() > 1e-4) and all(p.grad is None for p in loss.parameters())
    trainer.save_model(str(tmp_path / "final"))
    saved = ClassRelationMatrix.from_pretrained(tmp_path / "final" / "relation_matrix")  # K <= 8192: dense artifact
    assert torch.allclose(saved.matrix, loss.relation_matrix(), atol=1e-6)
