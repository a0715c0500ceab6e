"""Integrations with training frameworks; each sub-package imports its framework (install the matching extra).

- ``hf_labelsmooth.integrations.transformers``: `LabelSmoothingTrainer`, `LabelSmoothingTrainingArguments`.
- ``hf_labelsmooth.integrations.timm``: the loss factory with our names and the task for timm's ``train.py``.
"""
