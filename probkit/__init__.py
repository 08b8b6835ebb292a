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
import os
from typing import Any

# XLA:CPU (jax 0.10) can deadlock on 2-core machines when a vmapped program over more than
# 16384 rows (e.g. particles) is split into concurrent tasks by the concurrency-optimised
# scheduler: reproduced with an exact-mixture score inside lax.scan at n = 16385. Disabling
# that scheduler removes the hang; it only affects the CPU backend and takes effect when set
# before JAX initialises its backends (users who set XLA_FLAGS themselves keep their choice).
_XLA_FIX = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if "xla_cpu_enable_concurrency_optimized_scheduler" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_FIX).strip()

__version__ = "0.1.0"

_SUBPACKAGES = ("diffusion", "models", "smc", "fkc", "dmcmc", "inverse", "privacy", "diagnostics")

__all__ = ["sample", "enable_compilation_cache", "__version__", *_SUBPACKAGES]


def enable_compilation_cache(path: str | os.PathLike | None = None, min_compile_time_secs: float = 0.5) -> str:
    """Turn on JAX's persistent compilation cache: compiled programs are written to ``path``
    (default ``$PROBKIT_CACHE_DIR`` or ``~/.cache/probkit/jax``) and reused by later processes
    (a notebook kernel restart, the next script run), so a sampler's first call in a new
    process skips XLA compilation when its configuration was compiled before. Programs that
    compiled in less than ``min_compile_time_secs`` are not stored. Returns the directory.

    Call it once, before the first sampler call. Equivalent to
    ``jax.config.update("jax_compilation_cache_dir", path)``.
    """
    import jax

    path = path or os.environ.get("PROBKIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "probkit", "jax")
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"probkit.{name}")
    if name == "sample":
        from probkit.diffusion.integrators import sample

        return sample
    raise AttributeError(f"module 'probkit' has no attribute {name!r}")
