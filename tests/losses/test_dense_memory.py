"""Issue 22: a dense K×K matrix that would not fit is refused at loss construction, naming the bytes and top_n."""
from __future__ import annotations

import pytest
import torch

from hf_labelsmooth import create_loss
from hf_labelsmooth.losses import memory


@pytest.mark.parametrize("method,matrices", [("ols", 2), ("lls", 1), ("lspp", 1)])
def test_a_dense_matrix_that_would_not_fit_names_top_n(monkeypatch, method: str, matrices: int) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2 * 10**9)  # 2 GB free
    with pytest.raises(ValueError, match=rf"^Expected the dense .*{matrices} × 50000×50000 float32, "
                                         rf"{matrices * 10.0:.1f} GB\) to fit in the 2.0 GB .*Pass top_n"):
        create_loss(method, num_classes=50_000)  # refused before any K×K allocation (10 GB each)
    loss = create_loss(method, num_classes=50_000, top_n=8)  # the fix: K×N rows
    assert loss.top_n == 8


def test_a_dense_matrix_that_fits_is_built(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2 * 4 * 100 * 100)  # exactly two 100×100
    assert create_loss("ols", num_classes=100).matrix.shape == (100, 100)
    with pytest.raises(ValueError, match="Pass top_n"):
        create_loss("ols", num_classes=101)


def test_unknown_available_memory_skips_the_check(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: None)
    assert create_loss("lls", num_classes=10).logits.shape == (10, 10)


def test_available_memory_is_read_on_this_platform() -> None:
    free = memory.available_bytes()
    assert free is None or free > 0
    if torch.cuda.is_available():
        assert memory.available_bytes("cuda") > 0
    assert memory.available_bytes("meta") is None
