#!/usr/bin/env python
"""Fine-tune an audio classifier with class-relation label smoothing (CLI of HF's run_audio_classification.py).

Audio comes from local folders (DIR/class_name/clip.wav, read with soundfile and resampled with scipy), since
datasets' `Audio()` feature needs torchcodec + FFmpeg. Example::

    python train_scripts/run_audio_classification.py --model_name_or_path ./wav2vec2 --train_dir fsdd/train \
        --validation_dir fsdd/validation --max_length_seconds 1 --output_dir out --do_train --do_eval \
        --label_smoothing_method lspp --use_cpu
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from transformers import (AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification, DataCollatorWithPadding,
                          HfArgumentParser, set_seed)

from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from _hf_data import load_audio_folder, random_subsample, resample
from hf_labelsmooth.metrics.classification import compute_accuracy
from _hf_run import label_maps, setup_logging, train_and_evaluate

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on (local audio folders or a dataset saved with save_to_disk)."""

    dataset_name: str | None = field(default=None, metadata={"help": "A local dataset saved with save_to_disk "
                                                                     "(columns: audio array, sampling_rate, label)."})
    train_dir: str | None = field(default=None, metadata={"help": "Training audio: train_dir/class/*.wav."})
    validation_dir: str | None = field(default=None, metadata={"help": "Validation audio: validation_dir/class/*."})
    train_split_name: str = field(default="train", metadata={"help": "Training split name."})
    eval_split_name: str = field(default="validation", metadata={"help": "Evaluation split name."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column holding the audio arrays."})
    sampling_rate_column_name: str = field(default="sampling_rate", metadata={"help": "Column of sampling rates."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    max_length_seconds: float = field(default=20, metadata={"help": "Random crops of at most this length in training."})


@dataclass
class ModelArguments:
    """Which model, config and feature extractor to start from."""

    model_name_or_path: str = field(metadata={"help": "Local model directory (or cached Hub id)."})
    config_name: str | None = field(default=None, metadata={"help": "Config name or path if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models."})
    model_revision: str = field(default="main", metadata={"help": "Model revision."})
    feature_extractor_name: str | None = field(default=None, metadata={"help": "Feature extractor name or path."})
    freeze_feature_encoder: bool = field(default=True, metadata={"help": "Freeze the convolutional feature encoder."})
    attention_mask: bool = field(default=True, metadata={"help": "Pass the attention mask to the model."})
    token: str | None = field(default=None, metadata={"help": "Hub token."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Re-initialise a head of another size."})


def load_data(data_args: DataTrainingArguments):
    if data_args.dataset_name is not None:
        from datasets import load_from_disk

        dataset = load_from_disk(data_args.dataset_name)
    else:
        dataset = load_audio_folder(data_args.train_dir, data_args.validation_dir)
    return dataset.get(data_args.train_split_name), dataset.get(data_args.eval_split_name)


def make_transform(data_args: DataTrainingArguments, extractor, with_mask: bool, train: bool, seed: int):
    """Batch transform: resample to the extractor's rate, crop randomly in training, extract input_values."""
    rng = np.random.default_rng(seed)
    rate = extractor.sampling_rate

    def apply(batch):
        waves = [resample(np.asarray(a, dtype=np.float32), int(sr), rate) for a, sr in
                 zip(batch[data_args.audio_column_name], batch[data_args.sampling_rate_column_name])]
        if train:
            waves = [random_subsample(w, data_args.max_length_seconds, rate, rng) for w in waves]
        features = extractor(waves, sampling_rate=rate, return_attention_mask=with_mask)
        out = {"input_values": features["input_values"], "labels": batch[data_args.label_column_name]}
        if with_mask:
            out["attention_mask"] = features["attention_mask"]
        return out

    return apply


def prepare_splits(train, evaluation, data_args: DataTrainingArguments, extractor, with_mask: bool, seed: int):
    """Truncate (`max_*_samples`) and attach the feature-extraction transforms; returns (train, evaluation)."""
    limits = ((train, data_args.max_train_samples, True), (evaluation, data_args.max_eval_samples, False))
    out = []
    for split, limit, is_train in limits:
        if split is not None and limit is not None:
            split = split.shuffle(seed=seed).select(range(min(limit, len(split))))
        if split is not None:
            split.set_transform(make_transform(data_args, extractor, with_mask, is_train, seed))
        out.append(split)
    return out[0], out[1]


def main() -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    setup_logging(training_args)
    training_args.remove_unused_columns = False  # set_transform reads the raw audio columns
    set_seed(training_args.seed)
    train, evaluation = load_data(data_args)
    names = (train or evaluation).features[data_args.label_column_name].names
    label2id, id2label = label_maps(names)
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token,
           "trust_remote_code": model_args.trust_remote_code}
    extractor = AutoFeatureExtractor.from_pretrained(model_args.feature_extractor_name or model_args.model_name_or_path,
                                                     **hub)
    config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path, num_labels=len(names),
                                        label2id=label2id, id2label=id2label, finetuning_task="audio-classification",
                                        **hub)
    model = AutoModelForAudioClassification.from_pretrained(
        model_args.model_name_or_path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub)
    if model_args.freeze_feature_encoder and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    with_mask = model_args.attention_mask and getattr(extractor, "return_attention_mask", False)
    train, evaluation = prepare_splits(train, evaluation, data_args, extractor, with_mask, training_args.seed)
    trainer = LabelSmoothingTrainer(model=model, args=training_args,
                                    train_dataset=train if training_args.do_train else None,
                                    eval_dataset=evaluation if training_args.do_eval else None,
                                    compute_metrics=compute_accuracy, processing_class=extractor,
                                    data_collator=DataCollatorWithPadding(extractor))
    return train_and_evaluate(trainer, training_args)


if __name__ == "__main__":
    main()
