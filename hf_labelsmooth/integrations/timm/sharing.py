"""What a timm run through the launcher leaves to share: ``relation_matrix/``, a root card and, with
``--push-to-hub REPO``, one Hub commit holding what ``timm.models.push_to_hf_hub`` uploads (safetensors weights and a
``config.json`` that ``timm.create_model("hf-hub:REPO", pretrained=True)`` reads) plus ``relation_matrix/`` and the
card. Only Hub ids reach card metadata: a data folder or a local checkpoint is named by its folder, marked local.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ...relations import ARTIFACT_DIR
from ...relations.card import method_card, training_rows
from ...relations.card_text import code_string, hub_id, literal
from ...relations.constants import PNG_FILE
from ...relations.provenance import LOCAL_MARK
from ...relations.root_card import base_model_text, matrix_section

_logger = logging.getLogger(__name__)
HUB_DATASET_PREFIXES = ("hfds/", "hfids/")  # timm's readers of Hugging Face datasets


def describe_dataset(args: Any) -> str | None:
    """The run's data: a Hub dataset id (``--dataset hfds/NAME``), a torchvision set, or a local folder's name
    marked local (never a path)."""
    name = getattr(args, "dataset", None) or ""
    for prefix in HUB_DATASET_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    if name.startswith(("torch/", "tfds/", "wds/")):
        kind, _, rest = name.partition("/")
        return f"{rest} ({kind} dataset)"
    folder = getattr(args, "data_dir", None) or getattr(args, "data", None)
    if folder:
        return f"{os.path.basename(os.path.normpath(folder))}{LOCAL_MARK}"
    return f"{name}{LOCAL_MARK}" if name else None


def describe_model(args: Any, model: nn.Module | None) -> str | None:
    """The weights training started from: the Hub id of ``--pretrained`` weights, a local checkpoint's name marked
    local, or None (trained from scratch)."""
    checkpoint = getattr(args, "pretrained_path", None) or getattr(args, "initial_checkpoint", None)
    if checkpoint:
        return f"{os.path.basename(os.path.normpath(checkpoint))}{LOCAL_MARK}"
    if not getattr(args, "pretrained", False):
        return None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("hf_hub_id") or f"{getattr(args, 'model', 'model')} (timm pretrained weights)"


@dataclass
class TimmCardFacts:
    """What the root card of a launcher run states (text values untrusted: escaped when rendered)."""

    architecture: str
    method: str
    alpha: float
    source_model: str | None
    dataset: str | None
    epochs: int
    training: dict[str, Any] = field(default_factory=dict)
    matrix: Any = None
    image: bool = False


def render_root_card(facts: TimmCardFacts, repo_id: str | None = None) -> str:
    """The root README.md: timm's metadata conventions, the run's facts, the matrix, how to load the model."""
    from huggingface_hub import ModelCard, ModelCardData

    info, dataset, base = method_card(facts.method), hub_id(facts.dataset), hub_id(facts.source_model)
    tags = ["image-classification", "timm", "hf_labelsmooth", "label-smoothing"]
    data = ModelCardData(library_name="timm", pipeline_tag="image-classification", base_model=base,
                         datasets=[dataset] if dataset else None,
                         tags=tags + ([facts.method] if hub_id(facts.method) else []))
    rows = [("Architecture", literal(facts.architecture)), ("Base model", base_model_text(facts.source_model)),
            ("Dataset", literal(facts.dataset) if facts.dataset else "unknown"),
            ("Loss (`--loss-type`)", literal(facts.method) + (f": {info.title}" if info else "")),
            ("α (mass moved off the one-hot)", f"{facts.alpha:g}"), ("Epochs", str(facts.epochs)),
            *training_rows(facts.training)]
    repo = hub_id(repo_id)
    lines = [f"# {literal(repo.split('/')[-1]) if repo else literal(facts.architecture)}", "",
             "Trained with timm's own `train.py` through `hf-labelsmooth timm-train` (a class-relation loss in "
             "place of its criterion).", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    if facts.matrix is not None:
        lines += ["## Class relations", "", matrix_section(facts.matrix, repo_id, image=facts.image)]
    lines += ["## How to use", "", "```python", "import timm", "",
              f"model = timm.create_model({code_string('hf-hub:' + repo) if repo else '<hf-hub:user/repo>'}, "
              "pretrained=True)", "```", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def model_config(label_names: list[str], facts: TimmCardFacts) -> dict[str, Any]:
    """What `timm.models.save_for_hf` adds to config.json: the class names and how the run smoothed its labels."""
    record = {"method": facts.method, "alpha": facts.alpha, "training": facts.training,
              "relation_matrix": f"{ARTIFACT_DIR}/" if facts.matrix is not None else None}
    return {"label_names": label_names, "hf_labelsmooth": record}


def push_run(model: nn.Module, output_dir: Path, repo_id: str, label_names: list[str], facts: TimmCardFacts,
             data_config: dict[str, Any] | None = None, private: bool | None = None) -> Any:
    """Upload the model (timm's layout), ``relation_matrix/`` from `output_dir` and the root card in one commit.

    Returns:
        huggingface_hub's `CommitInfo`.
    """
    from huggingface_hub import HfApi
    from timm import __version__ as timm_version
    from timm.models import save_for_hf

    api = HfApi(library_name="timm", library_version=timm_version)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_for_hf(model, tmp, model_config=model_config(label_names, facts), data_config=data_config,
                    safe_serialization=True)
        if facts.matrix is not None:
            shutil.copytree(output_dir / ARTIFACT_DIR, folder / ARTIFACT_DIR)
        (folder / "README.md").write_text(render_root_card(facts, repo_id), encoding="utf-8")
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message="hf-labelsmooth timm-train: "
                                 f"model, {facts.method} relations and card")
    _logger.info(f"hf-labelsmooth: pushed the model, {ARTIFACT_DIR}/ and the card to {repo_id}")
    return info


def has_heatmap(output_dir: Path) -> bool:
    """Whether ``relation_matrix/`` in `output_dir` holds the heatmap PNG."""
    return (output_dir / ARTIFACT_DIR / PNG_FILE).is_file()


def unwrap_network(task: Any) -> nn.Module:
    """The timm model inside the task (its trainable module may be DDP-wrapped or compiled)."""
    from timm.utils.model import unwrap_model

    module = unwrap_model(task.trainable_module)
    return getattr(module, "model", module)


def share_run(task: Any, args: Any, output_dir: Path, label_names: list[str], options: Any, optimizer: Any = None,
              prior: dict[str, Any] | None = None) -> Path | None:
    """On rank 0 after train.py: ``relation_matrix/`` (methods that learn one), the root README.md, the push.

    Args:
        task: The trained `LaunchedTask`.
        args: train.py's parsed flags.
        output_dir: train.py's output folder.
        label_names: Class names in output order.
        options: The launcher's `LaunchOptions` (update period, ``--push-to-hub``, ``--hub-private``).
        optimizer: train.py's optimizer (with the matrix's param group).
        prior: `provenance.prior_record` of a ``relation_prior`` run's matrix.

    Returns:
        The ``relation_matrix/`` folder written, or None.
    """
    from ...relations import relations_from_loss
    from ...relations.provenance import training_record

    loss, model = task.loss, unwrap_network(task)
    training = training_record(loss, optimizer, options.relation_update_every, prior,
                               architecture=getattr(args, "model", None))
    push_to_hub, private = options.push_to_hub, options.hub_private
    facts = TimmCardFacts(architecture=str(getattr(args, "model", "")), method=loss.spec.name, alpha=loss.alpha,
                          source_model=describe_model(args, model), dataset=describe_dataset(args),
                          epochs=task.completed_epochs, training=training)
    written = None
    if loss.spec.learns_relations:
        facts.matrix = relations_from_loss(loss, label_names, source_model=facts.source_model, dataset=facts.dataset,
                                           epochs=facts.epochs, training=training)
        written = facts.matrix.save_pretrained(output_dir / ARTIFACT_DIR, repo_id=push_to_hub)
        _logger.info(f"hf-labelsmooth: wrote the {loss.spec.name} relations to {written}")
    facts.image = has_heatmap(output_dir)
    (output_dir / "README.md").write_text(render_root_card(facts, push_to_hub), encoding="utf-8")
    if push_to_hub is not None:
        from timm.data import resolve_data_config

        push_run(model, output_dir, push_to_hub, label_names, facts, resolve_data_config(vars(args), model=model),
                 private)
    return written


def log_wandb_heatmap(loss: Any, label_names: list[str]) -> None:
    """Log the matrix's heatmap to the running W&B run as ``relation_matrix``, uncommitted: train.py's
    ``wandb.log`` of the epoch's metrics that follows commits the step."""
    import sys

    wandb = sys.modules.get("wandb")  # train.py imported it; without it there is no run to log to
    if wandb is None or getattr(wandb, "run", None) is None or not loss.spec.learns_relations:
        return
    from ...relations import needs_topk_artifact, relations_from_loss
    from ...relations.plot import heatmap_array

    image = None if needs_topk_artifact(loss) else heatmap_array(relations_from_loss(loss, label_names))
    if image is not None:
        wandb.log({"relation_matrix": wandb.Image(image)}, commit=False)
