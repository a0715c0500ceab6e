"""`ExtractArguments`: everything ``hf-labelsmooth extract`` takes, in one dataclass (the CLI maps flags onto it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...relations.extract import ExtractionOptions

MatchBy = Literal["name", "index"]
Framework = Literal["auto", "transformers", "timm"]


@dataclass
class ExtractArguments:
    """Which classifier, which labelled data, how to extract, where to write.

    Args:
        model: A transformers classifier (folder or Hub id), or a timm model: ``timm:ARCH`` (with `checkpoint`),
            ``hf-hub:REPO`` or ``local-dir:PATH`` (a folder written by `timm.models.save_for_hf`).
        output_dir: The artifact folder to write (config.json, safetensors, card, heatmap).
        framework: ``auto`` (timm for the prefixes above, else transformers), ``transformers`` or ``timm``.
        checkpoint: Weights of a ``timm:ARCH`` model (a train.py checkpoint or a state dict file).
        in_chans: Input channels of a ``timm:ARCH`` model built here (with `checkpoint`).
        dataset_name, dataset_config_name, dataset_from_disk, train_file, train_dir: The data, as the training
            scripts take it (a Hub dataset or local image / audio / csv folder, a ``save_to_disk`` folder, a csv or
            json file, an image or audio folder ``DIR/<class>/file``).
        split: The split to read (default ``train``: the data the model learned from).
        label_column_name, text_column_names, image_column_name, audio_column_name: Columns (text: comma-separated,
            default ``sentence`` or ``text``).
        max_seq_length: Tokens per text input; max_length_seconds: audio clips cut to their first seconds (None: whole).
        max_samples: Read a fixed random subset of this many samples of the split (seed 0).
        match_labels_by: ``name``: the model's `id2label` (or timm ``label_names``) must name the dataset's classes
            (any order: the matrix follows the dataset's order); ``index``: output i is dataset class i.
        batch_size, device: Inference batch size and torch device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        correct_only, temperature, exclude_self: `ExtractionOptions`.
        cache_dir, revision, token, trust_remote_code: Passed to every `from_pretrained`.
        progress: Show a progress bar (on a terminal) and a line per 10 % (on 10 batches or more).
    """

    model: str
    output_dir: str
    framework: Framework = "auto"
    checkpoint: str | None = None
    in_chans: int = 3
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    dataset_from_disk: str | None = None
    train_file: str | None = None
    train_dir: str | None = None
    split: str = "train"
    label_column_name: str = "label"
    text_column_names: str | None = None
    image_column_name: str = "image"
    audio_column_name: str = "audio"
    max_seq_length: int = 128
    max_length_seconds: float | None = None
    max_samples: int | None = None
    match_labels_by: MatchBy = "name"
    batch_size: int = 32
    device: str = "cpu"
    correct_only: bool = False
    temperature: float = 1.0
    exclude_self: bool = False
    cache_dir: str | None = None
    revision: str | None = None
    token: str | None = None
    trust_remote_code: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.options = ExtractionOptions(self.correct_only, self.temperature, self.exclude_self)  # checks T
        sources = [f for f in ("dataset_name", "dataset_from_disk", "train_file", "train_dir") if getattr(self, f)]
        if len(sources) != 1:
            raise ValueError(f"Expected exactly one of --dataset_name, --dataset_from_disk, --train_file, --train_dir "
                             f"but got {sources or 'none'}. Pass the data the model was trained on.")
        for name in ("batch_size", "max_seq_length", "in_chans") + (("max_samples",) if self.max_samples else ()):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected --{name} >= 1 but got {getattr(self, name)}.")
        if self.max_length_seconds is not None and not self.max_length_seconds > 0:
            raise ValueError(f"Expected --max_length_seconds > 0 but got {self.max_length_seconds}.")
        if self.checkpoint is not None and not self.model.startswith("timm:"):
            raise ValueError(f"Expected --checkpoint only with a timm:ARCH model but got model {self.model!r}. "
                             "Name the architecture, e.g. timm:resnet18 --checkpoint model_best.pth.tar.")

    @property
    def hub(self) -> dict:
        """Keyword arguments of every transformers `from_pretrained` call."""
        return {"cache_dir": self.cache_dir, "revision": self.revision, "token": self.token,
                "trust_remote_code": self.trust_remote_code}
