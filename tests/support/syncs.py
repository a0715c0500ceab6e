"""Count the ops that make the host wait for the device (a `TorchDispatchMode`): the sync-free tests run the CPU on
the code path of an accelerator (`functional.host_shortcuts(False)`) and count what would stall a GPU's queue."""
from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = {  # ops whose result (a value or a shape) the host must read from the device
    "_local_scalar_dense", "is_nonzero", "item", "nonzero", "nonzero_static", "masked_select", "unique",
    "_unique", "_unique2", "unique_dim", "unique_consecutive", "equal", "allclose", "argwhere", "bincount",
    "histc", "_assert_scalar",
}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _has_bool_index(args: tuple[Any, ...]) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (indices or ()))


class SyncCounter(TorchDispatchMode):
    """Counts host-syncing ops by name (`counts`); boolean-mask indexing counts as ``index[bool]``."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = func._overloadpacket.__name__
        if name in SYNC_OPS:
            self.counts[name] += 1
        elif name in INDEX_OPS and _has_bool_index(args):
            self.counts[f"{name}[bool]"] += 1
        elif name == "repeat_interleave" and (kwargs or {}).get("output_size") is None and len(args) > 1 \
                and isinstance(args[1], torch.Tensor):
            self.counts["repeat_interleave"] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> SyncCounter:
        """Also count `Tensor.tolist`, which reads the data without dispatching an op."""
        self._tolist = torch.Tensor.tolist
        counts, tolist = self.counts, self._tolist

        def counted(tensor: torch.Tensor) -> Any:
            counts["tolist"] += 1
            return tolist(tensor)

        torch.Tensor.tolist = counted  # type: ignore[method-assign]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch.Tensor.tolist = self._tolist  # type: ignore[method-assign]
        super().__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
