"""Integrations with training frameworks; each sub-package imports its framework (install the matching extra).

- ``hf_labelsmooth.integrations.transformers``: `LabelSmoothingTrainer`, `LabelSmoothingTrainingArguments`.
- ``hf_labelsmooth.integrations.timm``: the loss factory with our names, the task, and the launcher that runs timm's
  own ``train.py`` with them (``hf-labelsmooth timm-train``).
"""
