"""Builders behind `train_scripts/run_slr.py`: local data loading, collators and adapters for images or text."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from datasets import ClassLabel, Dataset, DatasetDict

from _hf_data import load_imagefolder, load_text_files

from hf_labelsmooth._io import atomic_directory, write_json, write_tensors


def load_train_split(dataset_name: str | None, train_dir: str | None, train_file: str | None,
                     encoding: str | None = None) -> Dataset:
    """The training split from a `save_to_disk` folder, an image folder or a csv/json file (no Hub)."""
    if dataset_name is not None:
        from datasets import load_from_disk

        data = load_from_disk(dataset_name)
    elif train_dir is not None:
        data = load_imagefolder(train_dir, None)
    elif train_file is not None:
        data = load_text_files(train_file, None, encoding=encoding)
    else:
        raise ValueError("Expected `--dataset_name`, `--train_dir` (images) or `--train_file` (csv/json) but got none.")
    return data["train"] if isinstance(data, DatasetDict) else data


def prepare_labels(dataset: Dataset, label_column: str, task: str) -> tuple[Dataset, list[str] | None]:
    """Encode string class labels as a `ClassLabel` (classification); returns (dataset, class names or None)."""
    if task == "regression":
        return dataset, None
    if not isinstance(dataset.features[label_column], ClassLabel):
        dataset = dataset.class_encode_column(label_column)
    return dataset, list(dataset.features[label_column].names)


@dataclass
class ImageCollator:
    """Applies an image transform to raw PIL images and stacks ``pixel_values`` (+ float ``labels`` if any).

    Args:
        transform: PIL image -> tensor [C, H, W].
        image_column: Column of the images.
        mode: PIL mode the images are converted to (``"RGB"`` or ``"L"``).
        as_dict: True gives a dict batch (Hugging Face Trainer); False gives the input tensor (timm adapter).
    """

    transform: Callable[[Any], torch.Tensor]
    image_column: str = "image"
    mode: str = "RGB"
    as_dict: bool = True

    def __call__(self, examples: list[dict[str, Any]], train: bool = True) -> Any:
        pixels = torch.stack([self.transform(e[self.image_column].convert(self.mode)) for e in examples])
        if not self.as_dict:
            return pixels
        batch = {"pixel_values": pixels}
        if "labels" in examples[0]:
            batch["labels"] = torch.tensor([e["labels"] for e in examples], dtype=torch.float32)
        return batch


def torchvision_transforms(size: int, mean: Any, std: Any, augment: bool) -> tuple[Callable, Callable]:
    """(train, eval) transforms: random resized crop + flip when `augment`, else resize; then normalise."""
    from torchvision import transforms as T

    normalize = T.Normalize(mean, std) if mean is not None and std is not None else T.Lambda(lambda x: x)
    train = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()] if augment else [T.Resize((size, size))]
    return (T.Compose([*train, T.ToTensor(), normalize]),
            T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), normalize]))


def processor_size(processor: Any) -> int:
    """Square input side of a Hugging Face image processor."""
    size = processor.size
    return int(size.get("shortest_edge") or size["height"])


def timm_collates(model_name: str, image_column: str, augment: bool) -> tuple[ImageCollator, ImageCollator]:
    """(train, eval) collators with the model's timm data config (`resolve_data_config` + `create_transform`)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=timm.create_model(model_name, pretrained=False))
    mode = "L" if config["input_size"][0] == 1 else "RGB"
    train_tf = create_transform(**config, is_training=augment)
    eval_tf = create_transform(**config, is_training=False)
    return (ImageCollator(train_tf, image_column, mode, as_dict=False),
            ImageCollator(eval_tf, image_column, mode, as_dict=False))


def save_final_model(model: Any, output_dir: str, extra: dict[str, Any], processor: Any = None) -> str:
    """Save the final model atomically: `save_pretrained` for Hugging Face models, safetensors for timm/torch."""
    final = os.path.join(output_dir, "final_model")
    with atomic_directory(final) as tmp:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp)
            if processor is not None:
                processor.save_pretrained(tmp)
        else:
            write_tensors(tmp / "model.safetensors", dict(model.state_dict()), {"format": "pt"})
        write_json(tmp / "slr_config.json", extra)
    return final
