"""Integrations with training frameworks; each sub-package imports its framework (install the matching extra).

- ``hf_labelsmooth.integrations.transformers``: `LabelSmoothingTrainer`, `LabelSmoothingTrainingArguments`.
- ``hf_labelsmooth.integrations.timm``: the loss factory with our names, the task, and the launcher that runs timm's
  own ``train.py`` with them (``hf-labelsmooth timm-train``).
- ``hf_labelsmooth.integrations.extraction``: ``hf-labelsmooth extract``, a matrix read out of any trained
  transformers or timm classifier; ``data`` / ``audio``: labelled data as the training scripts take it.
"""
