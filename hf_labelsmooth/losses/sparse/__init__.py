"""Sparse top-N relation storage for large K: learnable slots (LS++/LLS) and the OLS heavy-hitter table."""
