"""`ClassRelationMatrix`: a learned K×K class-relation matrix with its label names, as a Hub artifact.

Files written by `save_pretrained`: ``relation_matrix.safetensors`` (tensor ``relation_matrix``, and ``logits`` for
LLS / LS++ so that `subset` can re-apply the softmax), ``config.json`` (label names and metadata), ``README.md``
(model card) and ``relation_matrix.png`` (heatmap). Loading reads only the safetensors and JSON files.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from . import relation_io as io

LOGITS_KIND_BY_LOSS = {"lls": "softmax", "lspp": "masked_softmax"}
_FIELDS = ("method", "alpha", "source_model", "dataset", "epochs")


class ClassRelationMatrix:
    """A K×K row-stochastic class-relation matrix R (row y: where smoothing sends the mass of class y).

    Args:
        matrix: K×K row-stochastic tensor (validated, stored float32 on CPU).
        label_names: K unique class names, in row order.
        method: Loss that produced R (``"ols"``, ``"lspp"``, ``"lls"``, ...).
        alpha: Smoothing weight used in training.
        source_model: Model (Hub id or name) trained with the loss.
        dataset: Dataset the matrix was learned on.
        epochs: Number of training epochs.
        logits: Optional K×K relation logits (LLS Q or LS++ C); `subset` re-softmaxes them.
        logits_kind: ``"softmax"`` (LLS) or ``"masked_softmax"`` (LS++, diagonal excluded); required with logits.
        extra: Further JSON-serialisable metadata (kept in config.json under ``"extra"``).
    """

    def __init__(self, matrix: Tensor, label_names: Sequence[str], *, method: str | None = None,
                 alpha: float | None = None, source_model: str | None = None, dataset: str | None = None,
                 epochs: int | float | None = None, logits: Tensor | None = None, logits_kind: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.matrix = io.check_matrix(matrix)
        self.label_names = io.check_label_names(label_names, self.matrix.shape[0])
        self.logits = None if logits is None else io.check_logits(logits, self.matrix, logits_kind)
        self.logits_kind = logits_kind if logits is not None else None
        self.method, self.alpha, self.epochs = method, alpha, epochs
        self.source_model, self.dataset = source_model, dataset
        self.extra = dict(extra or {})
        try:
            json.dumps(self.to_config())
        except (TypeError, ValueError) as err:
            raise ValueError(f"Expected JSON-serialisable metadata but got {err}.") from None

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return self.matrix.shape[0]

    @classmethod
    def from_loss(cls, loss: Any, label_names: Sequence[str], **metadata: Any) -> "ClassRelationMatrix":
        """Take R (and, for LLS / LS++, the raw logits) from a `RelationLoss`.

        Args:
            loss: A `RelationLoss` (or any object with `relation_matrix()`; `name` and `alpha` are read if present).
            label_names: Class names in the order of the model's outputs.
            **metadata: ``source_model``, ``dataset``, ``epochs``, ``method``/``alpha`` overrides; other keys go
                to ``extra``.
        """
        fields = {"method": getattr(loss, "name", None) or None, "alpha": getattr(loss, "alpha", None)}
        fields.update({k: metadata.pop(k) for k in _FIELDS if k in metadata})
        kind = LOGITS_KIND_BY_LOSS.get(getattr(loss, "name", ""))
        dense = getattr(loss, "top_n", None) is None  # sparse losses hold K×N slot logits: store R alone
        logits = getattr(loss, "logits", None) if kind and dense else None
        if isinstance(logits, Tensor):
            logits = logits.detach().float().cpu()
        else:
            logits, kind = None, None
        return cls(loss.relation_matrix(), label_names, logits=logits, logits_kind=kind, extra=metadata, **fields)

    def to_config(self) -> dict[str, Any]:
        """The config.json content (JSON-serialisable)."""
        return {"library_name": "hf_labelsmooth", "format_version": io.FORMAT_VERSION, "num_classes": self.num_classes,
                "label_names": self.label_names, **{k: getattr(self, k) for k in _FIELDS},
                "logits_kind": self.logits_kind, "extra": self.extra}

    def save_pretrained(self, save_directory: str | os.PathLike, *, card: bool = True,
                        repo_id: str | None = None) -> Path:
        """Write the safetensors + config.json (+ README.md model card and heatmap PNG), each file atomically.

        Args:
            save_directory: Target directory (created if needed; other files in it are left alone).
            card: Also write ``README.md`` and ``relation_matrix.png``.
            repo_id: Repo id shown in the card's usage snippet.

        Returns:
            The directory path.
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"relation_matrix": self.matrix}
        if self.logits is not None:
            tensors["logits"] = self.logits
        io.write_tensors(directory / io.MATRIX_FILE, tensors, {"format": "pt", "library": "hf_labelsmooth"})
        io.write_json(directory / io.CONFIG_FILE, self.to_config())
        if card:
            from .card import write_card

            write_card(self, directory, repo_id=repo_id)
        return directory

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, force_download: bool = False,
                        local_files_only: bool = False, token: str | bool | None = None,
                        subfolder: str | None = None) -> "ClassRelationMatrix":
        """Load from a directory written by `save_pretrained`, or from a Hub repo id (downloads 2 files).

        A Trainer output directory (model config.json + ``relation_matrix/`` subfolder) is accepted too;
        `subfolder` selects a folder inside the directory or repository.

        Raises:
            FileNotFoundError: Missing directory or files.
            ValueError: Corrupt/truncated files, or contents failing validation (shape, values, label names).
        """
        hub = {"revision": revision, "cache_dir": cache_dir, "force_download": force_download,
               "local_files_only": local_files_only, "token": token, "subfolder": subfolder}
        config_path, matrix_path = io.resolve_files(path_or_repo, **hub)
        config, tensors = io.read_json(config_path), io.read_tensors(matrix_path)
        if config.get("library_name") != "hf_labelsmooth":
            raise ValueError(f"Expected a config.json written by ClassRelationMatrix.save_pretrained (library_name "
                             f"'hf_labelsmooth') but got another one at {config_path} (a model's config?). Pass the "
                             "folder that holds the relation matrix artifact (e.g. <output_dir>/relation_matrix).")
        if int(config.get("format_version", 0)) > io.FORMAT_VERSION or "relation_matrix" not in tensors:
            raise ValueError(f"Expected a relation matrix of format version <= {io.FORMAT_VERSION} with tensor "
                             f"'relation_matrix' but got version {config.get('format_version')} and tensors "
                             f"{sorted(tensors)} in {matrix_path}. Upgrade hf_labelsmooth or re-save the matrix.")
        if config.get("num_classes", tensors["relation_matrix"].shape[0]) != tensors["relation_matrix"].shape[0]:
            raise ValueError(f"Expected {config['num_classes']} classes (config.json) but got a matrix of shape "
                             f"{tuple(tensors['relation_matrix'].shape)} in {matrix_path}.")
        return cls(tensors["relation_matrix"], config.get("label_names"), logits=tensors.get("logits"),
                   logits_kind=config.get("logits_kind"), extra=config.get("extra"),
                   **{k: config.get(k) for k in _FIELDS})

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Upload class-relation matrix",
                    private: bool | None = None, token: str | None = None, revision: str | None = None,
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
                                     revision=revision, create_pr=create_pr)

    def subset(self, label_names: Sequence[str]) -> "ClassRelationMatrix":
        """R restricted to `label_names` (in that order; SPEC LLS App. D).

        With stored logits the sub-block of logits is re-softmaxed; otherwise the sub-block's rows are
        renormalised. A row left with no mass becomes uniform over the other kept classes (with a warning).
        """
        names = io.check_label_names(label_names, len(label_names))
        missing = [n for n in names if n not in self.label_names]
        if missing or len(names) < 2:
            raise ValueError(f"Expected at least 2 label names from {self.label_names[:20]} but got {names[:20]} "
                             f"(unknown: {missing[:8]}).")
        idx = torch.tensor([self.label_names.index(n) for n in names])
        logits = None if self.logits is None else self.logits[idx][:, idx]
        matrix = io.softmax_logits(logits, self.logits_kind) if logits is not None else \
            io.renormalise_rows(self.matrix[idx][:, idx])
        fields = {k: getattr(self, k) for k in _FIELDS}
        extra = {**self.extra, "subset_of": len(self.label_names)}
        return type(self)(matrix, names, logits=logits, logits_kind=self.logits_kind, extra=extra, **fields)

    def top_related(self, k: int = 3, include_self: bool = False) -> list[list[tuple[str, float]]]:
        """For every class, its `k` most related classes as ``(name, probability)``, highest first."""
        m = self.matrix.clone()
        if not include_self:
            m.fill_diagonal_(float("-inf"))
        k = min(k, self.num_classes - (0 if include_self else 1))
        values, indices = m.topk(k, dim=-1)
        return [[(self.label_names[j], float(v)) for v, j in zip(vs.tolist(), js.tolist())]
                for vs, js in zip(values, indices)]

    def check_label_names(self, label_names: Sequence[str]) -> None:
        """Raise a ValueError naming the fix when `label_names` (e.g. a dataset's) differ from this matrix's."""
        names = list(label_names)
        if names == self.label_names:
            return
        if set(names) <= set(self.label_names) and len(set(names)) == len(names) >= 2:
            fix = "Use matrix.subset(dataset_label_names) to select/reorder the classes."
        else:
            fix = "Use a relation matrix learned on this dataset's classes, or rename the labels."
        raise ValueError(f"Expected label names {self.label_names[:20]} (relation matrix, K={self.num_classes}) but "
                         f"got {names[:20]} (dataset, K={len(names)}). {fix}")

    def plot(self, path: str | os.PathLike | None = None):
        """Heatmap of R via `hf_labelsmooth.plotting.plot_relation_matrix` (diagonal hidden)."""
        from .plotting import plot_relation_matrix

        title = f"Class-relation matrix ({self.method})" if self.method else "Class-relation matrix"
        return plot_relation_matrix(self.matrix, self.label_names, path, title=title)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.num_classes}, method={self.method!r}, alpha={self.alpha}, "
                f"labels={self.label_names[:5]}{'...' if self.num_classes > 5 else ''})")
