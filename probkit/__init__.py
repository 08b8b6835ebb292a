"""probkit: probabilistic inference on JAX.

The Monte Carlo view of diffusion models: a pretrained score model is a prior, and sampling
from anything built on it (annealed, guided or composed models, posteriors of inverse
problems) is a Feynman-Kac particle problem. Beside it: Bayesian estimation of differential
privacy.

Subpackages are imported lazily, so ``import probkit`` stays light and optional heavy
dependencies (ArviZ, matplotlib) load only when used.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = ("diffusion", "models", "smc", "fkc", "dmcmc", "inverse", "privacy", "diagnostics")

__all__ = ["sample", "__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"probkit.{name}")
    if name == "sample":
        from probkit.diffusion.integrators import sample

        return sample
    raise AttributeError(f"module 'probkit' has no attribute {name!r}")
