"""Score models: exact Gaussian mixtures, toy datasets, score networks."""
from probkit.models.gmm import GaussianMixture

__all__ = ["GaussianMixture"]
