r"""Island SMC: M independent particle systems pooled by their evidence.

Each island m returns normalised log-weights log W^m_i and an evidence estimate Ẑ_m. Because
Ẑ_m is unbiased for Z and Σ_i W^m_i φ(x^m_i) Ẑ_m is unbiased for Z π(φ), the pooled system

    W̄^m_i ∝ Ẑ_m W^m_i,        Ẑ = (1/M) Σ_m Ẑ_m

is a consistent weighted particle approximation of π with an unbiased evidence (Vergé,
Dubarry, Del Moral & Moulines 2015, "On parallel implementation of sequential Monte Carlo
methods: the island particle model", Statistics and Computing 25).

Islands are independent, so they vmap (or shard) without any collective; the price is that
resampling acts within islands of N/M particles only.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.scipy.special import logsumexp

Array = jax.Array

__all__ = ["pool_islands", "run_islands"]


def pool_islands(log_weights: Array, log_evidence: Array) -> tuple[Array, Array]:
    """Pool ``(M, N)`` normalised log-weights with ``(M,)`` log-evidences: returns the ``(M·N,)``
    pooled normalised log-weights and log Ẑ = log mean_m Ẑ_m."""
    if log_weights.ndim != 2 or log_evidence.shape != log_weights.shape[:1]:
        raise ValueError(
            f"`log_weights` must be (M, N) and `log_evidence` (M,), got {log_weights.shape} and {log_evidence.shape}"
        )
    lw = log_weights - logsumexp(log_weights, axis=1, keepdims=True) + log_evidence[:, None]
    lw = lw.reshape(-1)
    return lw - logsumexp(lw), logsumexp(log_evidence) - math.log(log_evidence.shape[0])


def run_islands(key: Array, run_fn: Callable[[Array], Any], num_islands: int) -> tuple[Any, Array, Array]:
    """Run ``run_fn(key) -> (particles, log_weights, log_evidence)`` (arrays only, e.g. a lambda
    around ``probkit.smc.run_smc`` returning those three fields) on ``num_islands`` keys with
    ``jax.vmap`` and pool them: returns particles with leading axis M·N, pooled log-weights and
    the pooled log-evidence."""
    if isinstance(num_islands, bool) or not isinstance(num_islands, int) or num_islands < 1:
        raise ValueError(f"`num_islands` must be a positive integer, got {num_islands!r}")
    parts, lw, lz = jax.vmap(run_fn)(jax.random.split(key, num_islands))
    lw, lz = pool_islands(lw, lz)
    parts = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), parts)
    return parts, lw, lz
