"""The classifier of ``hf-labelsmooth extract``: a transformers AutoModelFor{Sequence,Image,Audio}Classification or a
timm model, in eval mode on the device, with the function that turns a batch of dataset columns into its inputs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, cast

import torch
from torch import Tensor, nn

from .arguments import ExtractArguments
from .inputs import audio_inputs, image_inputs, text_inputs, timm_image_inputs

TIMM_PREFIXES = ("timm:", "hf-hub:", "local-dir:")
MODALITIES = {"text": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
              "image": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
              "audio": "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"}


@dataclass
class Classifier:
    """A model ready for inference: `inputs(batch)` → keyword tensors, `logits(inputs)` → [B, num_labels]."""

    model: nn.Module
    num_labels: int
    label_names: list[str] | None  # the model's own class names, in output order (None: it has none)
    inputs: Callable[[dict[str, list]], dict[str, Tensor]]
    framework: str

    @torch.inference_mode()
    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        out = self.model(**inputs) if self.framework == "transformers" else self.model(inputs["pixel_values"])
        return out if isinstance(out, Tensor) else out["logits"] if isinstance(out, dict) else out[0]


def is_timm(args: ExtractArguments) -> bool:
    return args.framework == "timm" or (args.framework == "auto" and args.model.startswith(TIMM_PREFIXES))


def load_classifier(args: ExtractArguments, columns: list[str]) -> Classifier:
    """Load `args.model` on `args.device` in eval mode; `columns` (the dataset's) pick the modality if needed.

    Raises:
        ValueError: Not a classifier of a supported kind, or a Hub id that cannot be reached (no network).
    """
    device = torch.device(args.device)
    try:
        classifier = load_timm(args) if is_timm(args) else load_transformers(args, columns)
    except OSError as err:
        raise ValueError(unreachable(args.model, err)) from None
    classifier.model.to(device).eval()
    return classifier


def unreachable(model: str, err: Exception) -> str:
    """The one-line message of a model that could not be read: a missing folder, or a Hub id with no network."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if model.startswith((".", "/", "~", "local-dir:")) or os.path.exists(model):
        return f"Expected a model folder at {model!r} but could not read it ({first}). Check the path."
    return (f"Expected {model!r} to be a local model folder or a Hub repo that can be reached but got: {first}. "
            "Without network, pass a local folder (e.g. downloaded with `hf download`), or set HF_HUB_OFFLINE=1 "
            "to use the cache.")


def transformers_modality(config: Any, columns: list[str], args: ExtractArguments) -> str:
    """text, image or audio: the classification heads that exist for the model type, then the dataset's columns."""
    from transformers.models.auto import modeling_auto

    kinds = [k for k, table in MODALITIES.items() if config.model_type in getattr(modeling_auto, table)]
    if not kinds:
        raise ValueError(f"Expected a transformers sequence, image or audio classifier but got model_type "
                         f"{config.model_type!r} ({args.model}). Pass a classification model.")
    present = [k for k in kinds if {"image": args.image_column_name, "audio": args.audio_column_name}.get(k)
               in columns]
    return (present or [k for k in kinds if k == "text"] or kinds)[0]


def load_transformers(args: ExtractArguments, columns: list[str]) -> Classifier:
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModelForAudioClassification,
                              AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer)

    config = AutoConfig.from_pretrained(args.model, **args.hub)
    kind = transformers_modality(config, columns, args)
    classes: dict[str, tuple[Any, Any]] = {"text": (AutoModelForSequenceClassification, AutoTokenizer),
                                           "image": (AutoModelForImageClassification, AutoImageProcessor),
                                           "audio": (AutoModelForAudioClassification, AutoFeatureExtractor)}
    auto, processor = classes[kind]
    model = auto.from_pretrained(args.model, config=config, **args.hub)
    proc = processor.from_pretrained(args.model, **args.hub)
    from ..transformers.trainer import config_label_names

    build = {"text": text_inputs, "image": image_inputs, "audio": audio_inputs}[kind]
    return Classifier(model, int(config.num_labels), config_label_names(config), build(args, proc, config),
                      "transformers")


def load_timm(args: ExtractArguments) -> Classifier:
    """``timm:ARCH`` (+ `checkpoint`), ``hf-hub:REPO`` or ``local-dir:PATH`` through `timm.create_model`."""
    import timm

    name = args.model.removeprefix("timm:")
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"Expected --checkpoint to be a file but got {args.checkpoint!r}.")
    kwargs: dict[str, Any] = {"in_chans": args.in_chans} if args.model.startswith("timm:") else {}
    if args.checkpoint is not None:
        kwargs["num_classes"] = head_size(args.checkpoint)
    try:
        model = timm.create_model(name, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint or "",
                                  **kwargs)
    except RuntimeError as err:  # a state dict of another architecture or input size
        raise ValueError(f"Expected --checkpoint to hold weights of {name} (in_chans={args.in_chans}) but got: "
                         f"{str(err).splitlines()[0][:300]}. Pass the architecture and --in_chans it was trained "
                         "with.") from None
    names = (getattr(model, "pretrained_cfg", None) or {}).get("label_names")
    return Classifier(model, int(cast(int, model.num_classes)), list(names) if names else None,
                      timm_image_inputs(args, model), "timm")


def head_size(checkpoint: str) -> int:
    """Outputs of a checkpoint's classifier: the rows of its last 2-D weight (timm's heads come last)."""
    from timm.models import load_state_dict

    weights = [v for k, v in load_state_dict(checkpoint).items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ValueError(f"Expected a classifier weight in --checkpoint {checkpoint!r} but found no 2-D weight.")
    return int(weights[-1].shape[0])
