"""`RelationArtifact`: what a dense matrix and a top-N table share — metadata, config.json, files, Hub, card.

The names and arguments follow huggingface_hub's `ModelHubMixin` (`save_pretrained`, `from_pretrained`,
`push_to_hub`, `generate_model_card`). Loading reads only safetensors and JSON, as untrusted input (file types and
sizes, the config schema and the tensor header are checked before any data is read);
`RelationArtifact.from_pretrained` returns whichever kind the folder or repo holds. A save is one unit
(`hf_labelsmooth._io.commit_folder`, config.json being the commit record). The format itself (files, fields,
versions) is defined in `constants` and `schema` (docs/format.md); this class maps it to Python objects.
"""
from __future__ import annotations

import abc
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Sequence

from torch import Tensor

from .._io import TensorSpecs, commit_folder, read_committed, read_consistent, read_tensor_file, recorded_digests, \
    tensor_bytes
from . import checks, schema
from .constants import ARTIFACT_FILES, CONFIG_FILE, TENSOR_FILES, TENSOR_METADATA
from .folders import Folder, resolve_folder


class RelationArtifact(abc.ABC):
    """Base of `ClassRelationMatrix` and `RelationTopK`: label names, metadata, save / load / push, card.

    Args:
        label_names: K unique class names, in row order.
        num_classes: K.
        method: Loss that produced the relations (``"ols"``, ``"lspp"``, ``"lls"``, ...).
        alpha: Mass moved off the one-hot in training (the loss's `alpha`).
        source_model: Model (Hub id or name) trained with the loss.
        dataset: Dataset the relations were learned on.
        epochs: Number of training epochs.
        training: How the relations were trained, beyond the loss (JSON object): the matrix's ``optimizer``
            family, ``relation_lr``, ``relation_weight_decay``, ``update_every`` (None: each epoch), ``top_n``,
            and for a student of a fixed matrix its ``prior`` (``{"source": repo id or folder, "sha256": ...}``).
        extra: Further JSON-serialisable metadata (kept in config.json under ``"extra"``).
    """

    tensor_file: ClassVar[str] = ""  # constants.MATRIX_FILE or constants.TOPK_FILE
    kind: ClassVar[str] = ""  # config.json's "artifact" (schema.KIND_FIELDS)
    _kinds: ClassVar[dict[str, type["RelationArtifact"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        RelationArtifact._kinds[cls.kind] = cls

    def __init__(self, label_names: Sequence[str], num_classes: int, *, method: str | None = None,
                 alpha: float | None = None, source_model: str | None = None, dataset: str | None = None,
                 epochs: int | float | None = None, training: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.label_names = checks.check_label_names(label_names, num_classes)
        if alpha is not None and not (schema.is_number(alpha) and 0 <= alpha <= 1):
            raise ValueError(f"Expected `alpha` (the mass moved off the one-hot) in [0, 1] or None but got {alpha!r}. "
                             "Pass the loss's alpha, e.g. ClassRelationMatrix(..., alpha=loss.alpha).")
        self.method, self.alpha, self.epochs = method, alpha, epochs
        self.source_model, self.dataset = source_model, dataset
        self.training = dict(training or {})
        self.extra = dict(extra or {})
        try:
            json.dumps(self.to_config())
        except (TypeError, ValueError) as err:
            raise ValueError(f"Expected JSON-serialisable metadata but got {err}.") from None

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.label_names)

    @staticmethod
    def fields_from_loss(loss: Any, metadata: dict[str, Any]) -> dict[str, Any]:
        """Constructor fields from a loss (`name`, `alpha`) and metadata; unknown metadata keys go to ``extra``."""
        fields = {"method": getattr(loss, "name", None) or None, "alpha": getattr(loss, "alpha", None)}
        rest = dict(metadata)
        fields.update({k: rest.pop(k) for k in schema.METADATA if k in rest})
        return {**fields, "extra": {**rest.pop("extra", {}), **rest}}

    @staticmethod
    def fields_from_config(config: dict[str, Any]) -> dict[str, Any]:
        """Constructor metadata fields read from a config.json."""
        return {**{k: config.get(k) for k in schema.METADATA}, "extra": config.get("extra")}

    @abc.abstractmethod
    def tensors(self) -> dict[str, Tensor]:
        """The tensors written to `tensor_file`."""

    def to_config(self) -> dict[str, Any]:
        """The config.json content (JSON-serialisable)."""
        return {**schema.header(self.kind), "num_classes": self.num_classes, "label_names": self.label_names,
                **{k: getattr(self, k) for k in schema.METADATA}, "extra": self.extra}

    @classmethod
    @abc.abstractmethod
    def from_files(cls, config: dict[str, Any], tensors: dict[str, Tensor], path: Path) -> "RelationArtifact":
        """Build from a validated config and the tensors read from `path`."""

    def save_pretrained(self, save_directory: str | os.PathLike, *, card: bool = True,
                        repo_id: str | None = None) -> Path:
        """Write the safetensors + config.json (+ README.md model card and heatmap PNG) as one unit.

        Everything is rendered in memory first; then config.json, written after the tensors and recording their
        sha256, commits the save (`hf_labelsmooth._io.commit_folder`): a crash leaves the previous save or the new
        one, and the temporary files of crashed saves are removed by the next save.

        Args:
            save_directory: Target directory (created if needed; other files in it are left alone).
            card: Also write ``README.md`` (and the heatmap PNG of a dense matrix).
            repo_id: Repo id shown in the card's usage snippet.

        Returns:
            The directory path.
        """
        from .card import card_files

        directory = Path(save_directory)
        tensors = {self.tensor_file: tensor_bytes(self.tensors(), TENSOR_METADATA)}
        files = card_files(self, repo_id=repo_id) if card else {}
        directory.mkdir(parents=True, exist_ok=True)
        commit_folder(directory, CONFIG_FILE, self.to_config(), tensors, files, managed=ARTIFACT_FILES)
        return directory

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, force_download: bool = False,
                        local_files_only: bool = False, token: str | bool | None = None,
                        subfolder: str | None = None) -> Any:
        """Load from a directory written by `save_pretrained`, or from a Hub repo id (downloads 2 files).

        A saved model is accepted too: a Trainer output directory or a model repo pushed by the training scripts
        (model config.json at the root, the artifact in ``relation_matrix/``) resolves to that subfolder.
        `subfolder` selects another folder inside the directory or repository. Called on `RelationArtifact`,
        returns whichever kind is stored; called on a subclass, refuses the other kind with the fix.

        The folder is untrusted input: non-regular files (devices, FIFOs), oversized files, a malformed config and
        tensors the config does not justify are refused before their data is read.

        Raises:
            FileNotFoundError: Missing directory or files, or a model that holds no matrix (e.g. a ce / ls run).
            ValueError: Corrupt/truncated files, a config field of the wrong type, tensors of another save than
                config.json, or contents failing validation (shape, values, label names).
        """
        hub = {"revision": revision, "cache_dir": cache_dir, "force_download": force_download,
               "local_files_only": local_files_only, "token": token, "subfolder": subfolder}
        folder = resolve_folder(pretrained_model_name_or_path, **hub)
        return read_consistent(folder.local, lambda: cls._read_folder(folder))  # a concurrent save: retry, locked

    @classmethod
    def _read_folder(cls, folder: Folder) -> Any:
        config_path = folder.fetch(CONFIG_FILE)
        config = schema.read_config(config_path)  # upgraded to the current format version
        artifact = schema.kind_of(config)
        kind = RelationArtifact._kinds.get(artifact) if isinstance(artifact, str) else None
        if kind is None or (cls is not RelationArtifact and kind is not cls):
            raise ValueError(f"Expected a {cls.kind or 'relation'} artifact but got {config.get('artifact')!r:.80} "
                             f"in {config_path}. Load it with hf_labelsmooth.relations.load_relations(...).")
        schema.check_config(config, config_path)
        tensors, tensor_path = kind.read_tensors(folder, config, config_path)
        return kind.from_files(config, tensors, tensor_path)

    @classmethod
    def read_tensors(cls, folder: Folder, config: dict[str, Any], config_path: Path) -> tuple[dict[str, Tensor], Path]:
        """The tensors a checked config commits to (header checked against the config before the data is read)."""
        def check(specs: TensorSpecs) -> None:
            schema.check_tensor_specs(specs, config, config_path.parent / cls.tensor_file)

        def read(path: Path) -> tuple[dict[str, Tensor], str]:
            return read_tensor_file(path, check)

        expected = recorded_digests(config, TENSOR_FILES).get(cls.tensor_file)
        return read_committed(folder.fetch(cls.tensor_file), expected, read, record_file=CONFIG_FILE,
                              local=folder.local is not None)

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Upload class relations",
                    private: bool | None = None, token: str | None = None, branch: str | None = None,
                    create_pr: bool = False) -> Any:
        """Create the repo if needed and upload all files of `save_pretrained` in a single commit.

        Returns:
            huggingface_hub's `CommitInfo` of that commit.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                     revision=branch, create_pr=create_pr)

    def generate_model_card(self, repo_id: str | None = None) -> Any:
        """The model card (`huggingface_hub.ModelCard`), rendered from the package template."""
        from .card import render_card

        return render_card(self, repo_id=repo_id)

    def check_label_names(self, label_names: Sequence[str]) -> None:
        """Raise a ValueError naming the fix when `label_names` (e.g. a dataset's) differ from these."""
        names = list(label_names)
        if names == self.label_names:
            return
        if set(names) <= set(self.label_names) and len(set(names)) == len(names) >= 2:
            fix = "Use matrix.subset(dataset_label_names) to select/reorder the classes."
        else:
            fix = "Use a relation matrix learned on this dataset's classes, or rename the labels."
        raise ValueError(f"Expected label names {self.label_names[:20]} (relation matrix, K={self.num_classes}) but "
                         f"got {names[:20]} (dataset, K={len(names)}). {fix}")

    @abc.abstractmethod
    def top_related(self, k: int = 3, include_self: bool = False) -> list[list[tuple[str, float]]]:
        """For every class, its `k` most related classes as ``(name, probability)``, highest first."""

    @abc.abstractmethod
    def uniform_rows(self) -> list[bool]:
        """Per class, whether its row gives every other class the same mass: a row with no learned relation (e.g.
        an OLS class with no correctly classified sample in the last period), whose top related classes would only
        be tie order."""

    @abc.abstractmethod
    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """Heatmap figure (written to `path` as PNG when given), or None where there is none."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.num_classes}, method={self.method!r}, alpha={self.alpha}, "
                f"labels={self.label_names[:5]}{'...' if self.num_classes > 5 else ''})")
