"""Audio of the training scripts: the package's readers (`hf_labelsmooth.integrations.audio`, shared with
``hf-labelsmooth extract``), under the names the scripts import."""
from __future__ import annotations

from hf_labelsmooth.integrations.audio import (AUDIO_EXTENSIONS, audio_split_dirs, decode_audio_columns,  # noqa: F401
                                               load_audio_folder, random_subsample, read_audio, resample)
