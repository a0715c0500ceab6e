"""Names of the artifact format: its files, its folder beside a saved model, its version (docs/format.md).

The fields of config.json, their checks and the upgrade of older versions live in `schema`.
"""
from __future__ import annotations

LIBRARY_NAME = "hf_labelsmooth"  # config.json's "library_name": marks an artifact's config among a model's
FORMAT_VERSION = 1  # config.json's "format_version"; bump it (and add a step to schema.UPGRADES) on a format change

CONFIG_FILE = "config.json"  # label names, metadata and the tensors' sha256: the commit record of a save
MATRIX_FILE = "relation_matrix.safetensors"  # dense artifact: "relation_matrix" [K, K], optional "logits" [K, K]
TOPK_FILE = "relation_topk.safetensors"  # top-N artifact: "indices" [K, N] (int64), "values" [K, N]
CARD_FILE = "README.md"  # model card (never read back)
PNG_FILE = "relation_matrix.png"  # heatmap of a dense matrix (never read back)
TENSOR_FILES = (MATRIX_FILE, TOPK_FILE)
ARTIFACT_FILES = (*TENSOR_FILES, CONFIG_FILE, CARD_FILE, PNG_FILE)
ARTIFACT_DIR = "relation_matrix"  # the artifact's subfolder beside a saved model (a Trainer output_dir, a model repo)
TENSOR_METADATA = {"format": "pt", "library": LIBRARY_NAME}  # the safetensors header's "__metadata__"
