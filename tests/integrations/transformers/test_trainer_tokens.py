"""`LabelSmoothingTrainer` on token classification: the loss is a mean over labelled tokens (-100 ignored), and
gradient accumulation counts tokens (`num_items_in_batch`), so it equals one large batch."""
from __future__ import annotations

import pytest
import torch

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments, create_loss, get_loss_class
from _hf_tokens import generated_corpus, tag_order
from tests.support.tokens import minilm_dir, tiny_tagger, tokenised_corpus


def _corpus(n: int):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    sentences, tags = generated_corpus(n, seed=3)
    names = tag_order({t for row in tags for t in row})
    return tokenizer, names, tokenised_corpus(tokenizer, sentences, tags, names)


def _train(out: str, method: str, batch: int, accumulation: int, n: int = 8, epochs: int = 2) -> LabelSmoothingTrainer:
    from transformers import DataCollatorForTokenClassification

    tokenizer, names, data = _corpus(n)
    args = LabelSmoothingTrainingArguments(
        output_dir=out, label_smoothing_method=method, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, num_train_epochs=epochs, learning_rate=1e-2, weight_decay=0.0,
        max_grad_norm=0.0, save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
        log_level="error", logging_steps=1, dataloader_num_workers=0,
        relation_lr=0.05 if get_loss_class(method).requires_optimizer else None)
    trainer = LabelSmoothingTrainer(model=tiny_tagger(names), args=args, train_dataset=data,
                                    data_collator=DataCollatorForTokenClassification(tokenizer))
    trainer.train()
    return trainer


def _first_step_token_mean(trainer: LabelSmoothingTrainer, method: str) -> float:
    """The loss of the untrained model on the whole data set (one step's batch), a mean over labelled tokens."""
    from transformers import DataCollatorForTokenClassification

    tokenizer, names, data = _corpus(len(trainer.train_dataset))
    batch = DataCollatorForTokenClassification(tokenizer)([data[i] for i in range(len(data))])
    labels = batch.pop("labels")
    fresh = tiny_tagger(names).eval()
    loss = create_loss(method, num_classes=len(names))
    with torch.no_grad():
        return float(loss(fresh(**batch).logits, labels))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ls", "lls"])
def test_accumulated_token_batches_equal_one_batch(tmp_path, method: str) -> None:
    """Sentences of different lengths: 2 x 4 sentences accumulated = 8 sentences at once (weights and matrix), and
    the logged loss of the first step is the mean over the labelled tokens of the 8 sentences."""
    big = _train(str(tmp_path / "big"), method, batch=8, accumulation=1)
    accumulated = _train(str(tmp_path / "ga"), method, batch=4, accumulation=2)
    for (name, p_big), p_ga in zip(big.model.named_parameters(), accumulated.model.parameters()):
        torch.testing.assert_close(p_ga, p_big, rtol=1e-4, atol=1e-5, msg=name)  # key biases: gradient ~0 (noise)
    torch.testing.assert_close(accumulated.relation_loss.relation_matrix(), big.relation_loss.relation_matrix(),
                               rtol=1e-4, atol=1e-6)
    expected = _first_step_token_mean(big, method)
    for trainer in (big, accumulated):
        first = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
        assert first == pytest.approx(expected, rel=1e-4)


def test_num_items_in_batch_counts_labelled_tokens(tmp_path) -> None:
    trainer = _train(str(tmp_path / "one"), "ols", batch=4, accumulation=1, n=4, epochs=1)
    labels = torch.tensor([[-100, 1, 2, -100], [-100, 0, -100, -100]])
    count = trainer._get_num_items_in_batch([{"labels": labels}, {"labels": labels[:1]}], torch.device("cpu"))
    assert int(count) == 3 + 2
    model_inputs = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "labels": torch.tensor([[-100, 1, 2, -100]])}
    trainer.model.eval()
    loss = trainer.compute_loss(trainer.model, model_inputs)
    logits = trainer.model(input_ids=model_inputs["input_ids"]).logits
    expected = trainer.relation_loss_fn(logits, model_inputs["labels"]).sum() / 2  # mean over the 2 labelled tokens
    torch.testing.assert_close(loss, expected)


def test_token_dataset_labels_are_checked_up_front(tmp_path) -> None:
    from datasets import Dataset

    trainer = _train(str(tmp_path / "one"), "ols", batch=4, accumulation=1, n=4, epochs=1)
    k = trainer.relation_loss.num_classes
    trainer.train_dataset = Dataset.from_dict({"input_ids": [[101, 102]] * 2, "labels": [[-100, 0], [k, -100]]})
    with pytest.raises(ValueError, match=rf"train dataset's 'labels' column holds values in \[0, {k}\]"):
        trainer.train()
