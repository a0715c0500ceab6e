"""benchmarks/_peers.py computes what ours computes (same loss, same gradients): loss_speed compares like for like."""
from __future__ import annotations

import pytest
import torch
from _peers import PEERS  # benchmarks/ (pytest's `pythonpath`)

from hf_labelsmooth import create_loss

K = 7


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_equals_ours(name: str) -> None:
    ours, peer = create_loss(name, K).train(), PEERS[name](K).train()
    with torch.no_grad():
        if name == "lspp":  # the peer stores the K-1 off-diagonal logits of each row
            peer.c.normal_()
            ours.logits.zero_().masked_scatter_(~torch.eye(K, dtype=torch.bool), peer.c)
        if name == "lls":
            ours.logits.normal_()
            peer.q.copy_(ours.logits)
    z, y = torch.randn(12, K, requires_grad=True), torch.randint(0, K, (12,))
    z.data[::2] += 6 * torch.nn.functional.one_hot(y[::2], K)  # some correct predictions for OLS's statistics
    value, peer_value = ours(z, y), peer(z, y)
    tol = 1e-5 * K if name == "lspp" else 1e-6  # the peer's log(t + 1e-6) against our exact log t
    torch.testing.assert_close(peer_value, value, atol=tol, rtol=0)
    grads = torch.autograd.grad(value, [z, *ours.parameters()])
    peer_grads = torch.autograd.grad(peer_value, [z, *peer.parameters()])
    torch.testing.assert_close(peer_grads[0], grads[0], atol=tol, rtol=0)
    if name == "lls":
        torch.testing.assert_close(peer_grads[1], grads[1], atol=1e-6, rtol=0)
    if name == "lspp":
        torch.testing.assert_close(peer_grads[1], grads[1][~torch.eye(K, dtype=torch.bool)].view(K, K - 1), atol=tol,
                                   rtol=0)
    if name == "ols":  # the peer stores columns
        assert ours.accumulator.abs().sum() > 0
        torch.testing.assert_close(peer.accumulated.t(), ours.accumulator)
