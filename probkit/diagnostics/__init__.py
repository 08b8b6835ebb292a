"""Diagnostics: distances between (weighted) samples (JAX, jittable: ``metrics``), ArviZ
conversion and weighted summaries without ArviZ (``arviz``; ArviZ is imported lazily), and
small matplotlib helpers (``probkit.diagnostics.plots``, imported on demand, not here).
"""
from probkit.diagnostics.arviz import WeightedSummary, kish_ess, to_inference_data, weighted_summary
from probkit.diagnostics.metrics import energy_distance, median_heuristic, mmd, sliced_wasserstein, wasserstein_1d

__all__ = [
    "sliced_wasserstein", "wasserstein_1d", "mmd", "median_heuristic", "energy_distance", "to_inference_data",
    "weighted_summary", "WeightedSummary", "kish_ess",
]
