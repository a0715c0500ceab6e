"""`eager_only`: keep a function out of ``torch.compile`` graphs (host syncs, collectives, Python-side state).

``torch.compiler.disable`` as a decorator imports Dynamo when the class is defined; this wrapper applies it on the
first call made while compiling, so importing the library stays as cheap as importing torch.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def eager_only(fn: F) -> F:
    """`fn` unchanged in eager mode; under torch.compile a call to it is a graph break and runs eagerly."""
    disabled: Callable[..., Any] | None = None

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        if not torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        if disabled is None:
            disabled = torch.compiler.disable(fn)
        return disabled(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
