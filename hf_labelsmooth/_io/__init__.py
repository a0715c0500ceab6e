"""The file layer: atomic writes and untrusted reads, knowing nothing of relations, losses or trainers.

- `atomic`: one file (bytes, JSON, safetensors) or a whole folder replaces its previous version in one step.
- `commit`: a folder of files that must stay consistent, committed by a JSON record of their sha256.
- `untrusted` (with `files`, `header`): JSON objects and safetensors read from files nobody vouches for: file type and
  size checked before reading, a safetensors header checked before its data.

Errors read "Expected … but got …" and name a fix that needs no flag of any trainer (callers wrap them).
"""
from __future__ import annotations

from .atomic import atomic_directory, atomic_write_bytes, json_bytes, tensor_bytes, write_json, write_tensors
from .digest import tensors_digest
from .commit import commit_folder, read_committed, read_consistent, recorded_digests
from .files import check_output_file, open_regular
from .header import TensorSpecs
from .untrusted import read_json, read_tensor_file, read_tensor_record, read_tensors

__all__ = [
    "TensorSpecs", "atomic_directory", "atomic_write_bytes", "check_output_file", "commit_folder", "json_bytes",
    "open_regular", "read_committed", "read_consistent", "read_json", "read_tensor_file", "read_tensor_record",
    "read_tensors", "recorded_digests", "tensor_bytes", "tensors_digest", "write_json", "write_tensors",
]
