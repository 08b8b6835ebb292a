"""Diagnostics: distances between (weighted) samples, ArviZ conversion, plots.

``probkit.diagnostics.plots`` and :func:`to_inference_data` import matplotlib / ArviZ lazily.
"""
from probkit.diagnostics.metrics import energy_distance, mmd, sliced_wasserstein, wasserstein_1d


def to_inference_data(result, var_name: str = "x"):
    """ArviZ InferenceData of a weighted-particle result or of MCMC chains (lazy import)."""
    from probkit.diagnostics.arviz import to_inference_data as _impl

    return _impl(result, var_name)


__all__ = ["sliced_wasserstein", "wasserstein_1d", "mmd", "energy_distance", "to_inference_data"]
