"""Data of the training scripts: the package's loaders (`hf_labelsmooth.integrations.data`, shared with
``hf-labelsmooth extract``), under the names the scripts import."""
from __future__ import annotations

from hf_labelsmooth.integrations.data import (SPLIT_DIRS, check_column, class_names, data_source,  # noqa: F401
                                              load_imagefolder, load_named, load_text_files, require_dir)
