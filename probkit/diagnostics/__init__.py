"""Diagnostics: distances between (weighted) samples, ArviZ conversion, weighted summaries.

* :func:`sliced_wasserstein`, :func:`mmd`, :func:`energy_distance` — JAX, jittable, weighted
  (``probkit.diagnostics.metrics``).
* :func:`to_inference_data` — ArviZ InferenceData of weighted particles or MCMC chains;
  :func:`weighted_summary` — weighted mean / std / quantiles / Kish ESS without ArviZ
  (``probkit.diagnostics.arviz``; ArviZ is imported lazily).
* ``probkit.diagnostics.plots`` — small matplotlib helpers (imported on demand, not here).
"""
from probkit.diagnostics.arviz import WeightedSummary, kish_ess, to_inference_data, weighted_summary
from probkit.diagnostics.metrics import energy_distance, median_heuristic, mmd, sliced_wasserstein, wasserstein_1d

__all__ = [
    "sliced_wasserstein", "wasserstein_1d", "mmd", "median_heuristic", "energy_distance", "to_inference_data",
    "weighted_summary", "WeightedSummary", "kish_ess",
]
