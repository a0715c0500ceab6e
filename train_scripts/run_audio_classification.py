#!/usr/bin/env python
"""Fine-tune an audio classifier with class-relation label smoothing (the CLI of transformers'
examples/pytorch/audio-classification/run_audio_classification.py, plus the `LabelSmoothingTrainingArguments`).

Audio is read with soundfile and resampled with scipy (``pip install 'hf_labelsmooth[audio]'``): datasets'
`Audio()` decoding needs torchcodec + FFmpeg. `--dataset_name` takes a Hub dataset id (its `Audio` column is read
undecoded, then with soundfile) or a local audio folder (DIR/{train,validation}/<class>/clip.wav).

Examples::

    # a pretrained Hub model (its convolutional feature encoder frozen, as the official script does)
    python train_scripts/run_audio_classification.py --model_name_or_path facebook/wav2vec2-base \
        --dataset_name superb --dataset_config_name ks --label_smoothing_method ols --output_dir out \
        --do_train --do_eval --push_to_hub --hub_model_id me/wav2vec2-ks-ols
    # offline, from scratch: a small Wav2Vec2 built from a config, on local folders of spoken digits
    python train_scripts/run_audio_classification.py --config_name train_scripts/configs/wav2vec2-digits \
        --dataset_name data/fsdd --max_length_seconds 1 --label_smoothing_method lspp --output_dir out \
        --do_train --do_eval --num_train_epochs 4 --learning_rate 3e-3 --use_cpu

`--freeze_feature_encoder` must be off for a randomly initialised encoder (a model from a config, or an untrained
checkpoint): frozen, it would keep its random filters. It defaults to on for `--model_name_or_path`, off for
`--config_name` alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, DataCollatorWithPadding, set_seed

from hf_labelsmooth.exits import run_main
from hf_labelsmooth import LabelSmoothingTrainer, LabelSmoothingTrainingArguments
from hf_labelsmooth.metrics.classification import classification_metrics
from _hf_audio import audio_split_dirs, decode_audio_columns, load_audio_folder, random_subsample, read_audio, resample
from _hf_data import check_column, class_names, data_source, load_named
from _hf_run import (ModelArguments, check_push_access, finish, load_model, load_processor, parse_arguments,
                     resolve_checkpoint, setup_logging, train_and_evaluate, trainer_sources)

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on."""

    dataset_name: str | None = field(default=None, metadata={
        "help": "A Hub dataset id (via datasets.load_dataset), or a local audio folder "
                "(DIR/{train,validation}/<class>/clip.wav, read with soundfile)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_from_disk: str | None = field(default=None, metadata={
        "help": "A dataset saved with save_to_disk (audio as {bytes, path}, or raw samples + a sampling rate column)."})
    train_dir: str | None = field(default=None, metadata={"help": "Training audio: train_dir/<class>/*.wav."})
    validation_dir: str | None = field(default=None, metadata={"help": "Validation audio: validation_dir/<class>/*."})
    train_split_name: str = field(default="train", metadata={"help": "Training split name."})
    eval_split_name: str = field(default="validation", metadata={"help": "Evaluation split name."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column holding the audio."})
    sampling_rate_column_name: str = field(default="sampling_rate", metadata={
        "help": "Column of sampling rates, for raw-sample audio columns only."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    max_length_seconds: float = field(default=20, metadata={"help": "Random crops of at most this length in training."})


@dataclass
class AudioModelArguments(ModelArguments):
    feature_extractor_name: str | None = field(default=None, metadata={"help": "Feature extractor name or path."})
    freeze_feature_encoder: bool | None = field(default=None, metadata={
        "help": "Freeze the convolutional feature encoder. Must be off for a randomly initialised encoder; default: "
                "on with --model_name_or_path, off when training from scratch (--config_name alone)."})
    attention_mask: bool = field(default=True, metadata={"help": "Pass the attention mask to the model."})


def load_data(data_args: DataTrainingArguments, model_args: ModelArguments):
    """(train, evaluation, class names); local audio folders are read with soundfile, others via load_dataset."""
    folders = audio_split_dirs(data_args.dataset_name) if data_args.dataset_name else None
    if folders is not None:
        dataset = load_audio_folder(folders)
    elif data_args.dataset_name or data_args.dataset_from_disk:
        dataset = decode_audio_columns(load_named(data_args.dataset_name, data_args.dataset_config_name,
                                                  data_args.dataset_from_disk, model_args.cache_dir, model_args.token))
    else:
        dataset = load_audio_folder({"train": data_args.train_dir, "validation": data_args.validation_dir})
    check_column(dataset, data_args.audio_column_name, "--audio_column_name")
    check_column(dataset, data_args.label_column_name, "--label_column_name")
    names = class_names(dataset, data_args.label_column_name)
    return dataset.get(data_args.train_split_name), dataset.get(data_args.eval_split_name), names


def make_transform(data_args: DataTrainingArguments, extractor, with_mask: bool, train: bool, seed: int):
    """Batch transform: read, resample to the extractor's rate, crop randomly in training, extract input_values."""
    rng = np.random.default_rng(seed)
    rate = extractor.sampling_rate

    def apply(batch):
        audio = batch[data_args.audio_column_name]
        rates = batch.get(data_args.sampling_rate_column_name, [None] * len(audio))
        waves = [resample(*read_audio(value, sr), rate) for value, sr in zip(audio, rates)]
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
    model_args, data_args, training_args = parse_arguments(
        (AudioModelArguments, DataTrainingArguments, LabelSmoothingTrainingArguments))
    setup_logging(training_args)
    check_push_access(training_args)
    checkpoint = resolve_checkpoint(training_args)
    training_args.remove_unused_columns = False  # set_transform reads the raw audio columns
    set_seed(training_args.seed)
    train, evaluation, names = load_data(data_args, model_args)
    extractor = load_processor(AutoFeatureExtractor, model_args.feature_extractor_name, model_args)
    model = load_model(AutoModelForAudioClassification, model_args, names, "audio-classification")
    freeze = model_args.freeze_feature_encoder
    if (model_args.model_name_or_path is not None if freeze is None else freeze) and \
            hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    with_mask = model_args.attention_mask and getattr(extractor, "return_attention_mask", False)
    train, evaluation = prepare_splits(train, evaluation, data_args, extractor, with_mask, training_args.seed)
    source = data_source(data_args.dataset_name, data_args.dataset_from_disk, data_args.train_dir,
                         data_args.validation_dir)
    trainer = LabelSmoothingTrainer(model=model, args=training_args,
                                    train_dataset=train if training_args.do_train else None,
                                    eval_dataset=evaluation if training_args.do_eval else None,
                                    compute_metrics=classification_metrics, processing_class=extractor,
                                    data_collator=DataCollatorWithPadding(extractor),
                                    **trainer_sources(model_args, source, data_args.dataset_config_name))
    metrics = train_and_evaluate(trainer, training_args, checkpoint)
    finish(trainer, training_args, "audio-classification", ["audio"])
    return metrics


if __name__ == "__main__":
    run_main(main, script=__file__)
