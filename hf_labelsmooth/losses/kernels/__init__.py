"""Fused hard-label kernels: `torch.autograd.Function`s with hand-written backward (tested against `functional`)."""
