"""ArviZ InferenceData from probkit results, and weighted summaries without ArviZ.

ArviZ (and xarray) are imported lazily, inside the functions, so samplers import without them.
This is the one implementation: the ``.to_inference_data()`` methods of probkit's results
(:class:`probkit.smc.WeightedParticles`, ``probkit.dmcmc.DLGResult``,
``probkit.privacy.GDPPosterior``) delegate here.

**Weighted particles** — anything with ``particles`` (a pytree with leading axis N, usually an
array ``(N, ...)``) and ``log_weights`` ``(N,)``, such as :class:`probkit.smc.WeightedParticles`
(duck-typed: every other field is optional):

* ``posterior``: the particles as one chain of N draws (``chain=1, draw=N``). By default they are
  stored *as they are*, weighted; with ``key=...`` they are first resampled (systematic, by
  ``blackjax.smc.resampling``) to ``num_draws`` equally weighted draws.
* ``sample_stats``: ``log_weight`` (normalised, per draw) and ``weight``; after resampling these
  are uniform. ``sample_stats.attrs`` hold ``log_evidence``, ``nfe``, ``final_ess`` (Kish, of the
  stored weights before any resampling), ``num_steps``, ``corrector`` and ``resampled_for_export``.
* ``smc_history`` (only when the result has an ``ess`` history): one row per step with ``ess``,
  ``resampled`` and, when present, ``log_weight_spread``, ``acceptance`` and the time ``t``.

ArviZ's own statistics (``az.summary``, ``az.ess``) treat draws as equally weighted: summarise
weighted particles with :func:`weighted_summary`, or export with ``key=`` to resample first.

**MCMC chains** — an array shaped ``(chains, draws, ...)`` or a dict of such arrays: a standard
InferenceData on which ``az.summary``, ``az.rhat`` and ``az.ess`` work.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks, _results

__all__ = ["to_inference_data", "chains_to_inference_data", "weighted_summary", "WeightedSummary", "kish_ess"]


# ------------------------------------------------------------------ weighted summaries (NumPy only)
class WeightedSummary(NamedTuple):
    """Self-normalised importance-sampling summary of weighted particles.

    Attributes:
      mean: ``sum_i w_i x_i`` (event shape).
      std: ``sqrt(sum_i w_i (x_i - mean)^2)`` (event shape).
      quantiles: ``(len(probs), *event_shape)`` weighted quantiles (inverse of the weighted CDF).
      probs: the quantile levels.
      ess: Kish's effective sample size ``1 / sum_i w_i^2``.
      num_particles: N.
    """

    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray
    probs: tuple[float, ...]
    ess: float
    num_particles: int

    def __str__(self) -> str:
        mean, std, q = self.mean.reshape(-1), self.std.reshape(-1), self.quantiles.reshape(len(self.probs), -1)
        head = f"{'':>6}{'mean':>10}{'std':>10}" + "".join(f"{f'q{p:g}':>10}" for p in self.probs)
        rows = [f"{i:>6}{mean[i]:>10.4f}{std[i]:>10.4f}" + "".join(f"{q[j, i]:>10.4f}" for j in range(len(self.probs)))
                for i in range(mean.size)]
        return "\n".join([head, *rows, f"ESS (Kish) = {self.ess:.1f} of N = {self.num_particles}"])


def normalised_weights(n: int, log_weights: Any, weights: Any, prefix: str = "", rows: str = "particle"):
    """Probability weights (float64) from ``log_weights`` or non-negative ``weights`` (uniform when
    both are None), checked with errors naming ``{prefix}weights`` / ``{prefix}log_weights``.
    A traced (jitted) argument gets its shape checked only, and ``None`` is returned."""
    if log_weights is not None and weights is not None:
        raise ValueError(f"give either `{prefix}weights` or `{prefix}log_weights`, not both")
    if log_weights is None and weights is None:
        return np.full(n, 1.0 / n)
    name = f"{prefix}log_weights" if log_weights is not None else f"{prefix}weights"
    raw = log_weights if log_weights is not None else weights
    if np.shape(raw) != (n,):
        raise ValueError(f"`{name}` must have shape ({n},) (one per {rows}), got {np.shape(raw)}")
    if _checks.is_traced(raw):
        return None
    a = np.asarray(raw, dtype=np.float64)
    if log_weights is not None:
        if np.any(np.isnan(a)) or np.any(a == np.inf) or not np.any(np.isfinite(a)):
            raise ValueError(f"`{name}` must not contain NaN or +inf, and not all be -inf")
        w = np.exp(a - a.max())
    else:
        if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
            raise ValueError(f"`{name}` must be finite, non-negative and not all zero")
        w = a
    return w / w.sum()


def kish_ess(log_weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of (unnormalised) log-weights."""
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim != 1 or lw.shape[0] < 1:
        raise ValueError(f"`log_weights` must be a non-empty 1-D array, got shape {lw.shape}")
    w = normalised_weights(lw.shape[0], lw, None)
    return float(1.0 / np.sum(w**2))


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse weighted CDF, ``inf {x : F_w(x) >= p}``, along axis 0 (the definition of
    ``np.quantile(..., method="inverted_cdf")`` on the sample with integer weights expanded)."""
    order = np.argsort(x, axis=0, kind="stable")
    cw = np.cumsum(w[order], axis=0)
    cw /= cw[-1]
    # the first point whose cumulative weight reaches p (searchsorted, side="left"), with a small
    # slack so that p equal to a cumulative weight up to rounding picks that point (as
    # inverted_cdf does in exact arithmetic)
    idx = np.sum(cw[None] < (probs - 1e-12).reshape((-1,) + (1,) * x.ndim), axis=1)
    return np.take_along_axis(np.take_along_axis(x, order, axis=0), np.minimum(idx, x.shape[0] - 1), axis=0)


def weighted_summary(
    particles: Any,
    log_weights: Any = None,
    *,
    weights: Any = None,
    probs: Sequence[float] = (0.05, 0.5, 0.95),
) -> WeightedSummary:
    """Weighted mean, std, quantiles and Kish ESS of particles ``(N, ...)`` (NumPy, no ArviZ).

    Give normalised or unnormalised ``log_weights`` (e.g. ``result.log_weights``) or
    non-negative ``weights``; neither means equal weights. ``print(summary)`` gives a table.
    """
    x = np.asarray(particles, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"`particles` must be an array shaped (N, ...) with N >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("`particles` contains non-finite values")
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.size == 0 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"`probs` must be levels in [0, 1], got {probs!r}")
    w = normalised_weights(x.shape[0], log_weights, weights)
    wb = w.reshape((-1,) + (1,) * (x.ndim - 1))
    mean = np.sum(wb * x, axis=0)
    std = np.sqrt(np.sum(wb * (x - mean) ** 2, axis=0))
    return WeightedSummary(mean, std, _weighted_quantiles(x, w, p), tuple(float(v) for v in p),
                           float(1.0 / np.sum(w**2)), int(x.shape[0]))


# ------------------------------------------------------------------------------------ InferenceData
def chains_to_inference_data(chains: Any, var_name: str = "x", sample_stats: Mapping[str, Any] | None = None):
    """InferenceData from MCMC draws ``(chains, draws, ...)`` (an array or a dict of arrays).

    ``sample_stats`` (optional) maps names to arrays shaped ``(chains, draws)``, e.g.
    ``{"acceptance_rate": ...}`` or ``{"diverging": ...}`` in ArviZ's naming.
    """
    import arviz as az

    named = chains if isinstance(chains, Mapping) else {var_name: chains}
    posterior = {str(k): np.asarray(v) for k, v in named.items()}
    if not posterior:
        raise ValueError("`chains` is empty")
    shape = None
    for name, arr in posterior.items():
        if arr.ndim < 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"`chains` entry {name!r} must be shaped (chains, draws, ...), got {arr.shape}")
        if shape is not None and arr.shape[:2] != shape:
            raise ValueError(f"`chains` entries disagree on (chains, draws): {shape} and {arr.shape[:2]} ({name!r})")
        shape = arr.shape[:2]
    stats = None
    if sample_stats is not None:
        stats = {str(k): np.asarray(v) for k, v in sample_stats.items()}
        for name, arr in stats.items():
            if arr.shape[:2] != shape:
                raise ValueError(f"`sample_stats` entry {name!r} must start with (chains, draws) = {shape}, got {arr.shape}")
    return az.from_dict(posterior=posterior, sample_stats=stats)


def step_times(result: Any, k: int) -> np.ndarray | None:
    """The time at the end of each of the ``k`` steps of ``result.times`` (a grid
    ``t_0 > ... > t_K``: step j ends at ``t_{j+1}``), or None."""
    times = getattr(result, "times", None)
    if times is None:
        return None
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    return t[1:] if t.shape[0] == k + 1 else (t if t.shape[0] == k else None)


def _posterior_dict(particles: Any, var_name: str) -> dict[str, np.ndarray]:
    """Leaves of a particle pytree as ``{name: (1, N, ...)}`` (names like ``x_key``)."""
    leaves = jax.tree_util.tree_leaves_with_path(particles)
    if len(leaves) == 1 and not leaves[0][0]:
        return {var_name: np.asarray(leaves[0][1])[None]}
    return {f"{var_name}_{jax.tree_util.keystr(path, simple=True, separator='_')}": np.asarray(leaf)[None]
            for path, leaf in leaves}


def _particles_to_inference_data(result: Any, var_name: str, key: Any, num_draws: int | None, resampling: str):
    import arviz as az
    import xarray as xr

    posterior = _posterior_dict(result.particles, var_name)
    n = next(iter(posterior.values())).shape[1]
    if any(a.shape[1] != n for a in posterior.values()):
        raise ValueError("`result.particles` leaves must share the leading (particle) axis")
    w = normalised_weights(n, np.asarray(result.log_weights, dtype=np.float64), None, "result.")
    resampled_for_export = key is not None
    if resampled_for_export:
        num_draws = _checks.positive_int("num_draws", n if num_draws is None else num_draws)
        idx = np.asarray(_results.resampler(resampling)(key, jnp.asarray(w, jnp.float32), int(num_draws)))
        posterior = {k: v[:, idx] for k, v in posterior.items()}
        lw_out = np.full(int(num_draws), -np.log(num_draws))
    else:
        with np.errstate(divide="ignore"):
            lw_out = np.log(w)  # zero weight -> -inf
    idata = az.from_dict(posterior=posterior, sample_stats={"log_weight": lw_out[None], "weight": np.exp(lw_out)[None]})
    attrs: dict[str, Any] = {"final_ess": float(1.0 / np.sum(w**2)), "num_particles": int(n),
                             "resampled_for_export": int(resampled_for_export)}
    if getattr(result, "log_evidence", None) is not None:
        attrs["log_evidence"] = float(np.asarray(result.log_evidence))
    if getattr(result, "nfe", None) is not None:
        attrs["nfe"] = int(np.asarray(result.nfe))
    if isinstance(getattr(result, "corrector", None), str):
        attrs["corrector"] = result.corrector
    ess = getattr(result, "ess", None)
    if ess is not None:
        ess = np.asarray(ess).reshape(-1)
        k = ess.shape[0]
        attrs["num_steps"] = int(k)
        hist = {"ess": ("step", ess)}
        for field in ("resampled", "log_weight_spread", "acceptance"):
            val = getattr(result, field, None)
            if val is not None and np.shape(val) == (k,):
                hist[field] = ("step", np.asarray(val))
        times = step_times(result, k)
        if times is not None:
            hist["t"] = ("step", times)
        idata.add_groups({"smc_history": xr.Dataset(hist)})
    idata.sample_stats.attrs.update(attrs)
    return idata


def to_inference_data(
    result: Any,
    var_name: str = "x",
    *,
    key: Any = None,
    num_draws: int | None = None,
    resampling: str = "systematic",
):
    """ArviZ InferenceData of a weighted-particle result or of MCMC chains (see the module doc).

    Args:
      result: an object with ``particles`` and ``log_weights`` (weighted particles), or MCMC
        draws ``(chains, draws, ...)`` (an array, or a dict of arrays).
      var_name: name of the variable (prefix of the names of pytree leaves).
      key: weighted particles only: if given, store ``num_draws`` (default N) equally weighted
        draws resampled with ``resampling`` instead of the weighted particles.
    """
    if hasattr(result, "particles") and hasattr(result, "log_weights"):
        return _particles_to_inference_data(result, var_name, key, num_draws, resampling)
    if key is not None or num_draws is not None:
        raise ValueError("`key` / `num_draws` apply to weighted particles only, not to MCMC chains")
    return chains_to_inference_data(result, var_name)
