"""`OnLoss`: a storage's view of a tensor it registered on its loss, looked up by name at each access."""
from __future__ import annotations

from typing import Any

from torch import Tensor


class OnLoss:
    """Class attribute of a storage: ``self.<name>`` reads ``self.loss.<name>`` (a buffer, parameter or state).

    Read at each access, never cached: ``loss.to(device)`` replaces buffers, and the tensors stay in the loss's
    state_dict under their own names.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: Any = None) -> Tensor:
        return getattr(obj.loss, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"Expected an in-place update of `{self.name}` (e.g. `.add_()`, `.copy_()`) but got an "
                             "assignment, which would leave the loss's tensor behind.")
