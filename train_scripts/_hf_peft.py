"""LoRA adapters for the training scripts (``--use_peft``; the ``[peft]`` extra)."""
from __future__ import annotations

import logging
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def head_names(model: nn.Module, num_labels: int) -> list[str]:
    """Names of the Linear layers that output `num_labels` (the classification head, trained in full)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, nn.Linear) and module.out_features == num_labels})


def wrap_lora(model: Any, r: int, alpha: int, target_modules: list[str] | None) -> Any:
    """`model` with LoRA adapters of rank `r` on `target_modules` (default: peft's choice for the model type) and
    its classification head fully trained (saved with the adapter).

    Raises:
        ImportError: Without peft, naming the extra.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError(f"Expected peft for --use_peft but got: {err}. Install it with "
                          "pip install 'hf_labelsmooth[peft]'.") from err
    heads = head_names(model, int(model.config.num_labels))
    try:
        config = LoraConfig(r=r, lora_alpha=alpha, target_modules=target_modules, modules_to_save=heads)
        peft_model = get_peft_model(model, config)
    except ValueError as err:  # peft knows no default target modules for this model type
        raise ValueError(f"Expected LoRA target modules for model type {model.config.model_type!r} but got: {err} "
                         "Pass --lora_target_modules (names of its Linear layers, e.g. query value).") from err
    logger.info("LoRA r=%d alpha=%d on %s; head %s trained in full.", r, alpha, config.target_modules, heads)
    return peft_model
