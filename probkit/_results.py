"""The results core shared by every sampler's result (lowest layer: imports only JAX, BlackJAX
and ``_checks``); docs/architecture.md ("Results") describes it. Unweighted samplers
(``probkit.sample``, DLG) mix in :class:`EqualWeights`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from blackjax.smc import resampling as bj_resampling

from probkit import _checks

RESAMPLING = ("systematic", "multinomial", "stratified", "residual")


def resampler(name: str):
    """``blackjax.smc.resampling.<name>`` (ValueError for an unknown scheme)."""
    if name not in RESAMPLING:
        raise ValueError(f"`resampling` must be one of {RESAMPLING}, got {name!r}")
    return getattr(bj_resampling, name)


class ResultsCore:
    """Methods shared by all results (``particles``, ``log_weights``, ``nfe`` are fields)."""

    def _replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def weights(self) -> jax.Array:
        return jnp.exp(self.log_weights)

    @property
    def num_particles(self) -> int:
        return int(jnp.shape(self.log_weights)[-1])

    def weighted_mean(self) -> Any:
        """Σ_i W_i x_i over the leading axis of every leaf."""
        w = self.weights
        return jax.tree.map(lambda a: jnp.tensordot(w, a, axes=1), self.particles)

    def resample(self, key: jax.Array, n: int | None = None, method: str = "systematic") -> Any:
        """``n`` equally weighted draws (default N) by ``blackjax.smc.resampling``."""
        n = _checks.positive_int("n", self.num_particles if n is None else n)
        idx = resampler(method)(key, self.weights, n)
        return jax.tree.map(lambda a: a[idx], self.particles)

    def to_inference_data(self, var_name: str = "x", *, key: jax.Array | None = None, num_draws: int | None = None,
                          resampling: str = "systematic"):
        """ArviZ InferenceData of the particles (one chain of N weighted draws; see
        :func:`probkit.diagnostics.arviz.to_inference_data`)."""
        from probkit.diagnostics.arviz import to_inference_data

        return to_inference_data(self, var_name, key=key, num_draws=num_draws, resampling=resampling)


class EqualWeights(ResultsCore):
    """``particles`` = ``samples`` with uniform ``log_weights`` = -log N."""

    @property
    def particles(self) -> jax.Array:
        return self.samples

    @property
    def log_weights(self) -> jax.Array:
        n = jnp.shape(self.samples)[0]
        return jnp.full((n,), -math.log(n), jnp.result_type(float))
