"""ArviZ InferenceData from probkit results (ArviZ is imported lazily).

* Weighted particles (anything with ``particles`` and ``log_weights``, e.g.
  :class:`probkit.smc.WeightedParticles`): one chain of N draws; normalised log-weights, weights
  and log-evidence in ``sample_stats``; the per-step SMC history (ESS, resampled flags, log-weight
  spread) in an ``smc_history`` group. Weighted summaries must use the weights (or
  ``result.resample``): ArviZ's own summaries treat draws as equally weighted.
* MCMC chains: an array shaped ``(chains, draws, ...)`` or a dict of such arrays, so that
  ``az.summary``, ``az.rhat`` and ``az.ess`` work.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["to_inference_data", "chains_to_inference_data"]


def chains_to_inference_data(chains: Any, var_name: str = "x", sample_stats: Mapping[str, Any] | None = None):
    """InferenceData from MCMC draws ``(chains, draws, ...)`` (an array or a dict of arrays)."""
    import arviz as az

    posterior = {k: np.asarray(v) for k, v in chains.items()} if isinstance(chains, Mapping) else {var_name: np.asarray(chains)}
    for name, arr in posterior.items():
        if arr.ndim < 2:
            raise ValueError(f"`chains` entry {name!r} must be shaped (chains, draws, ...), got {arr.shape}")
    stats = None if sample_stats is None else {k: np.asarray(v) for k, v in sample_stats.items()}
    return az.from_dict(posterior=posterior, sample_stats=stats)


def to_inference_data(result: Any, var_name: str = "x"):
    """InferenceData of a weighted-particle result or of MCMC chains (see module docstring)."""
    if hasattr(result, "particles") and hasattr(result, "log_weights"):
        from probkit.smc.feynman_kac import _to_inference_data

        return _to_inference_data(result, var_name)
    return chains_to_inference_data(result, var_name)
