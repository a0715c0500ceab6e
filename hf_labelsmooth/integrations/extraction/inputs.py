"""Batches of dataset columns → model inputs, per modality (the evaluation-time preprocessing of the scripts)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..audio import read_audio, resample
from .arguments import ExtractArguments

Inputs = Callable[[dict[str, list]], dict[str, Tensor]]


def column(batch: dict[str, list], name: str, flag: str) -> list:
    if name not in batch:
        raise ValueError(f"Expected a column {name!r} but got columns {sorted(batch)}. Set {flag}.")
    return batch[name]


def text_inputs(args: ExtractArguments, tokenizer: Any, config: Any) -> Inputs:
    """Tokenised text columns (joined by a space), padded per batch, cut at `max_seq_length` tokens."""
    max_length = min(args.max_seq_length, getattr(tokenizer, "model_max_length", args.max_seq_length))

    def apply(batch: dict[str, list]) -> dict[str, Tensor]:
        found = [str(c) for c in ("sentence", "text") if c in batch][:1] or ["sentence or text"]
        names = args.text_column_names.split(",") if args.text_column_names else found
        cols = [column(batch, c, "--text_column_names") for c in names]
        texts = [" ".join(str(c[i]) for c in cols) for i in range(len(cols[0]))]
        return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))

    return apply


def image_mode(channels: int) -> str:
    return "L" if channels == 1 else "RGB"


def image_inputs(args: ExtractArguments, processor: Any, config: Any) -> Inputs:
    """The image processor's own evaluation preprocessing (resize, crop, normalise) of PIL images."""
    mode = image_mode(getattr(config, "num_channels", None) or
                      (getattr(processor, "data_config", None) or {}).get("input_size", (3,))[0])

    def apply(batch: dict[str, list]) -> dict[str, Tensor]:
        images = [img.convert(mode) for img in column(batch, args.image_column_name, "--image_column_name")]
        return {"pixel_values": processor(images=images, return_tensors="pt")["pixel_values"]}

    return apply


def timm_image_inputs(args: ExtractArguments, model: Any) -> Inputs:
    """timm's evaluation transform from the model's data config (`resolve_data_config`)."""
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=model)
    transform, mode = create_transform(**config), image_mode(config["input_size"][0])

    def apply(batch: dict[str, list]) -> dict[str, Tensor]:
        images = column(batch, args.image_column_name, "--image_column_name")
        return {"pixel_values": torch.stack([transform(img.convert(mode)) for img in images])}

    return apply


def audio_inputs(args: ExtractArguments, extractor: Any, config: Any) -> Inputs:
    """Audio read with soundfile, resampled to the extractor's rate, cut to `max_length_seconds`, padded per batch."""
    rate = extractor.sampling_rate
    with_mask = bool(getattr(extractor, "return_attention_mask", False))

    def apply(batch: dict[str, list]) -> dict[str, Tensor]:
        audio = column(batch, args.audio_column_name, "--audio_column_name")
        rates = batch.get("sampling_rate", [None] * len(audio))
        waves = [resample(*read_audio(value, sr), rate) for value, sr in zip(audio, rates)]
        if args.max_length_seconds is not None:
            waves = [w[:int(round(rate * args.max_length_seconds))] for w in waves]
        features = extractor(waves, sampling_rate=rate, padding=True, return_attention_mask=with_mask,
                             return_tensors="pt")
        return {k: v for k, v in features.items() if k in ("input_values", "input_features", "attention_mask")}

    return apply
