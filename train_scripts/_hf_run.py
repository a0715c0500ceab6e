"""Shared parts of the training scripts (train_scripts/run_*_classification.py), as in transformers' examples:
arguments (a single ``.json`` argument is the arguments file), logging, model loading (pretrained or from a
config), resume, train, evaluate, and the model card / Hub push at the end."""
from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from hf_labelsmooth.integrations.transformers.checkpoint import check_resumable
from hf_labelsmooth.relations.provenance import SCRATCH_MARK, describe_source

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to fine-tune: a pretrained one (`model_name_or_path`) or a new one from `config_name`."""

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Hub id or local folder of a pretrained model. Leave out to train from scratch from --config_name."})
    config_name: str | None = field(default=None, metadata={
        "help": "Config (Hub id, folder or config.json) if not the model's; alone, a new model is trained from "
                "scratch (e.g. train_scripts/configs/convnext-digits: works offline)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models and data."})
    model_revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the one of `hf auth login`)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Re-initialise a head of another size."})
    use_peft: bool = field(default=False, metadata={
        "help": "Train LoRA adapters (and the head) instead of all weights; save_model writes the adapter (peft)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (with --use_peft)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (with --use_peft)."})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "Layers that get adapters (with --use_peft); default: peft's for the model type."})

    def __post_init__(self) -> None:
        if self.model_name_or_path is None and self.config_name is None:
            raise ValueError("Expected --model_name_or_path (a pretrained model) or --config_name (a config to train "
                             "from scratch) but got neither. Pass one, e.g. --config_name "
                             "train_scripts/configs/convnext-digits.")
        if self.use_peft and (self.lora_r < 1 or self.lora_alpha < 1):
            raise ValueError(f"Expected --lora_r and --lora_alpha >= 1 but got {self.lora_r} and {self.lora_alpha}.")

    @property
    def hub(self) -> dict[str, Any]:
        """Keyword arguments of every `from_pretrained` call."""
        return {"cache_dir": self.cache_dir, "revision": self.model_revision, "token": self.token,
                "trust_remote_code": self.trust_remote_code}


def parse_arguments(dataclass_types: tuple) -> tuple:
    """Parse the command line, or the JSON file when it is the only argument (as transformers' examples)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        parsed = parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
    else:
        parsed = parser.parse_args_into_dataclasses()
    for args in parsed:
        check_class_label_method(getattr(args, "label_smoothing_method", None))
    return tuple(parsed)


def check_class_label_method(method: str | None) -> None:
    """Refuse a method meant for soft targets only (soft_kl): these scripts train on class labels, where it is plain
    cross-entropy (a run that would smooth nothing while its name says otherwise)."""
    from hf_labelsmooth import get_loss_class, list_losses

    if method is not None and get_loss_class(method).spec.soft_targets_only:
        usable = [m for m in list_losses() if not get_loss_class(m).spec.soft_targets_only]
        raise ValueError(f"Expected --label_smoothing_method in {usable} (this script trains on class labels) but got "
                         f"{method!r}, which is meant for soft labels and equals ce on class labels. Use ce, or "
                         "train_scripts/run_slr.py for Stochastic Label Refinery.")


def setup_logging(training_args: Any) -> None:
    """Log to stdout at the level asked by `training_args`, each line once."""
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    logging.getLogger("hf_labelsmooth").setLevel(level)  # e.g. which relation_prior matrix was loaded
    datasets.utils.logging.set_verbosity(level)
    datasets.utils.logging.disable_propagation()  # datasets has its own handler: the root's would print lines twice
    transformers.utils.logging.set_verbosity(level)


def resolve_checkpoint(training_args: Any) -> str | None:
    """`--resume_from_checkpoint`, else the last checkpoint in `output_dir` when training there again.

    Raises:
        ValueError: At once, when that checkpoint comes from a run of another method (with the fixes).
    """
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and training_args.do_train and os.path.isdir(training_args.output_dir):
        from transformers.trainer_utils import get_last_checkpoint

        checkpoint = get_last_checkpoint(training_args.output_dir)
    if checkpoint is not None and training_args.do_train:
        check_resumable(checkpoint, training_args.label_smoothing_method)
        logger.info("Resuming from %s (start elsewhere with a new --output_dir).", checkpoint)
    return checkpoint


def label_maps(names: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """(label2id, id2label) for `config` from the dataset's class names."""
    return {n: i for i, n in enumerate(names)}, dict(enumerate(names))


def load_model(auto_model: Any, model_args: ModelArguments, names: list[str], task: str) -> Any:
    """`auto_model` (e.g. AutoModelForImageClassification) for `names`: pretrained, or new from `config_name`."""
    from transformers import AutoConfig

    label2id, id2label = label_maps(names)
    config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path,
                                        num_labels=len(names), label2id=label2id, id2label=id2label,
                                        finetuning_task=task, **model_args.hub)
    if getattr(config, "label_names", None) is not None:  # timm_wrapper would save the checkpoint's names, not ours
        config.label_names = list(names)
    if model_args.model_name_or_path is None:
        logger.info("Training a new %s model from scratch (config %s).", config.model_type, model_args.config_name)
        model = auto_model.from_config(config, trust_remote_code=model_args.trust_remote_code)
    else:
        model = auto_model.from_pretrained(model_args.model_name_or_path, config=config,
                                           ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
                                           **model_args.hub)
    if model_args.use_peft:
        from _hf_peft import wrap_lora

        model = wrap_lora(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_target_modules)
    return model


def load_processor(auto_processor: Any, name: str | None, model_args: ModelArguments) -> Any:
    """The tokenizer / image processor / feature extractor named `name`, else the model's, else the config's."""
    return auto_processor.from_pretrained(name or model_args.model_name_or_path or model_args.config_name,
                                          **model_args.hub)


def trainer_sources(model_args: ModelArguments, dataset: str | None, dataset_config: str | None) -> dict[str, Any]:
    """`LabelSmoothingTrainer` keywords naming the base model and data (recorded in the matrix and model card)."""
    source = model_args.model_name_or_path
    if source is None:
        source = f"{SCRATCH_MARK} from the config {describe_source(model_args.config_name)}"
    return {"source_model": source, "dataset": dataset, "dataset_config": dataset_config}


def check_push_access(training_args: Any) -> None:
    """With ``--push_to_hub``: create (or find) the repo now, as the Trainer would once data and model are loaded.

    A Hub that cannot be reached, offline mode or a refused token then fail before any work, and the scripts'
    `run_main` prints the cause in one line (`hf_labelsmooth.exits.hub_cause`).
    """
    if not training_args.push_to_hub:
        return
    from huggingface_hub import create_repo, get_token

    if not (training_args.hub_token or get_token()):
        raise ValueError("Expected a Hub token for --push_to_hub but got none. Run `hf auth login` (or pass "
                         "--hub_token / set HF_TOKEN).")
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    create_repo(repo_id, token=training_args.hub_token, private=training_args.hub_private_repo, exist_ok=True)


def _checkpoint_step(checkpoint: str | None) -> int | None:
    """The global step a checkpoint was saved at (its ``trainer_state.json``), None without one."""
    path = os.path.join(checkpoint, "trainer_state.json") if checkpoint else ""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("global_step", 0))


def train_and_evaluate(trainer: Any, training_args: Any, checkpoint: str | None) -> dict[str, float]:
    """Train (from `checkpoint` when given), save the model + relation matrix, then evaluate.

    A re-run whose checkpoint is already at the last step trains nothing (e.g. the same command with
    ``--push_to_hub`` to upload a finished run): the run's ``train_results.json`` / ``trainer_state.json`` are kept.

    Returns:
        The evaluation metrics (empty without `do_eval`).
    """
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        if _checkpoint_step(checkpoint) == trainer.state.global_step:
            logger.info("Nothing left to train (%s is at the last step): the run's train results are kept.",
                        checkpoint)
        else:
            trainer.log_metrics("train", result.metrics)
            trainer.save_metrics("train", result.metrics)
            trainer.save_state()
    metrics: dict[str, float] = {}
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return metrics


def finish(trainer: Any, training_args: Any, task: str, tags: list[str]) -> None:
    """Write the model card, and with `--push_to_hub` upload model + ``relation_matrix/`` + card in one commit."""
    kwargs = {"tasks": task, "tags": [task, *tags]}
    if training_args.push_to_hub:
        trainer.push_to_hub(**kwargs)
    else:
        trainer.create_model_card(**kwargs)
