"""Sample-based distances between (weighted) empirical measures, in JAX: the sliced Wasserstein
distance (Rabin, Peyré, Delon & Bernot 2011; Bonneel, Rabin, Peyré & Pfister 2015), exact for
weighted measures through their quantile functions; the maximum mean discrepancy with a sum of
RBF kernels (Gretton, Borgwardt, Rasch, Schölkopf & Smola 2012, JMLR 13); Székely & Rizzo's
energy distance.

**Weights.** Every function takes optional probability weights ``x_weights`` / ``y_weights``
(non-negative, any positive total: they are normalised internally) *or* log-weights
``x_log_weights`` / ``y_log_weights`` (any additive constant: they are soft-maxed), e.g.
``result.log_weights`` of a particle sampler. A weighted sample stands for the empirical measure
``sum_i w_i delta_{x_i}``, so integer weights give exactly the distance of the sample with each
point repeated that many times.

**Memory.** Pairwise kernels are computed in row blocks with ``lax.map``, so n = m = 2e4 needs
O(block_size * m) memory, not O(n m).

All functions are jittable (``num_projections``, ``p``, ``block_size``, ``unbiased`` and
``squared`` are static). Argument checks run on concrete values at the Python boundary; under
``jit`` only the shape checks apply.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from probkit import _checks
from probkit.diagnostics.arviz import normalised_weights

Array = jax.Array

__all__ = ["sliced_wasserstein", "wasserstein_1d", "mmd", "energy_distance", "median_heuristic"]

DEFAULT_BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


# -------------------------------------------------------------------------------- argument handling
def _as_2d(name: str, x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`{name}` must be an (n, d) array of samples (or (n,) in 1-D), got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"`{name}` contains non-finite values")
    return x


def _weights(name: str, n: int, weights: ArrayLike | None, log_weights: ArrayLike | None, dtype) -> Array:
    """Normalised probability weights from weights or log-weights (uniform when both are None),
    checked by :func:`probkit.diagnostics.arviz.normalised_weights` (values only when concrete)."""
    if weights is None and log_weights is None:
        return jnp.full((n,), 1.0 / n, dtype)
    normalised_weights(n, log_weights, weights, f"{name}_", f"row of `{name}`")
    w = jnp.asarray(weights if weights is not None else log_weights).astype(dtype)
    return w / jnp.sum(w) if weights is not None else jax.nn.softmax(w)


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[Array, Array]:
    x, y = _as_2d("x", x), _as_2d("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`x` and `y` must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    dtype = jnp.promote_types(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


# ------------------------------------------------------------------------------- sliced Wasserstein
def _cumulative(w: Array | None, order: Array, n: int, dtype) -> Array:
    """CDF levels of a sorted sample: exact ``(i + 1) / n`` for uniform weights (so two uniform
    samples of sizes n and k n share breakpoints exactly), else a cumsum rescaled to end at 1."""
    if w is None:
        return jnp.arange(1, n + 1, dtype=dtype) / n
    c = jnp.cumsum(w[order])
    return c / c[-1]


def wasserstein_1d(u: Array, v: Array, u_weights: Array | None = None, v_weights: Array | None = None, p: float = 2.0) -> Array:
    """Exact W_p between two weighted 1-D empirical measures (``None`` = uniform weights).

    ``W_p^p = int_0^1 |F_u^{-1}(q) - F_v^{-1}(q)|^p dq``. Both quantile functions are piecewise
    constant with breakpoints at the cumulative weights, so the integral is a finite sum over the
    merged breakpoints of the two CDFs (O((n + m) log(n + m))). Weights need not be normalised.
    """
    iu, iv = jnp.argsort(u), jnp.argsort(v)
    u_s, v_s = u[iu], v[iv]
    cu = _cumulative(u_weights, iu, u.shape[0], u_s.dtype)
    cv = _cumulative(v_weights, iv, v.shape[0], v_s.dtype)
    levels = jnp.clip(jnp.sort(jnp.concatenate([cu, cv])), 0.0, 1.0)
    widths = jnp.diff(levels, prepend=jnp.zeros((1,), levels.dtype))
    mids = levels - 0.5 * widths  # a level inside each interval where both quantiles are constant
    qu = u_s[jnp.clip(jnp.searchsorted(cu, mids, side="left"), 0, u.shape[0] - 1)]
    qv = v_s[jnp.clip(jnp.searchsorted(cv, mids, side="left"), 0, v.shape[0] - 1)]
    return jnp.sum(widths * jnp.abs(qu - qv) ** p) ** (1.0 / p)


def sliced_wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    key: Array,
    num_projections: int = 256,
    p: float = 2.0,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
    *,
    x_log_weights: ArrayLike | None = None,
    y_log_weights: ArrayLike | None = None,
) -> Array:
    """Sliced Wasserstein-p distance between two (weighted) samples.

    ``SW_p(x, y) = (E_theta W_p^p(theta#x, theta#y))^(1/p)``, theta uniform on the unit sphere,
    estimated with ``num_projections`` random directions drawn from ``key``. Each 1-D distance
    is exact: equal-size unweighted samples use the sorted difference
    ``mean |sort(theta.x) - sort(theta.y)|^p``; otherwise the merged-quantile formula of
    :func:`wasserstein_1d`. Rabin et al. (2011), Bonneel et al. (2015).

    Args:
      x: ``(n, d)`` samples (``(n,)`` is read as 1-D).
      y: ``(m, d)`` samples.
      key: PRNG key for the directions.
      num_projections: number of random directions L (Monte Carlo error O(L^-1/2)).
      p: order, >= 1.
      x_weights, y_weights: optional non-negative weights (normalised internally).
      x_log_weights, y_log_weights: optional log-weights instead of weights.

    Returns:
      A scalar, >= 0.
    """
    x, y = _check_pair(x, y)
    num_projections = _checks.positive_int("num_projections", num_projections)
    if not isinstance(p, (int, float)) or not p >= 1:
        raise ValueError(f"`p` must be a number >= 1, got {p!r}")
    # uniform weights stay None so that the CDF levels are exact (see _cumulative)
    wx = None if x_weights is None and x_log_weights is None else _weights("x", x.shape[0], x_weights, x_log_weights, x.dtype)
    wy = None if y_weights is None and y_log_weights is None else _weights("y", y.shape[0], y_weights, y_log_weights, y.dtype)
    theta = jax.random.normal(key, (num_projections, x.shape[1]), x.dtype)
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    return _sliced(x, y, wx, wy, theta, float(p))


@jax.jit(static_argnames=("p",))
def _sliced(x, y, wx, wy, theta, p):
    px, py = x @ theta.T, y @ theta.T  # (n, L), (m, L)
    if wx is None and wy is None and x.shape[0] == y.shape[0]:
        wpp = jnp.mean(jnp.abs(jnp.sort(px, 0) - jnp.sort(py, 0)) ** p, axis=0)
    else:
        wpp = jax.vmap(lambda a, b: wasserstein_1d(a, b, wx, wy, p) ** p, in_axes=(1, 1))(px, py)
    return jnp.mean(wpp) ** (1.0 / p)


# ----------------------------------------------------------------------------- kernel discrepancies
def _sq_dists(a: Array, b: Array) -> Array:
    return jnp.maximum(jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2 * a @ b.T, 0.0)


def _blocked_quadratic_form(kernel, a: Array, wa: Array, b: Array, wb: Array, block: int) -> Array:
    """``sum_ij wa_i wb_j k(a_i, b_j)`` over row blocks of ``a`` (memory O(block * len(b)))."""
    n = a.shape[0]
    block = min(block, n)
    pad = (-n) % block
    a_b = jnp.pad(a, ((0, pad), (0, 0))).reshape(-1, block, a.shape[1])
    wa_b = jnp.pad(wa, (0, pad)).reshape(-1, block)  # padded rows carry weight 0
    return jnp.sum(jax.lax.map(lambda args: args[1] @ kernel(args[0], b) @ wb, (a_b, wa_b)))


def median_heuristic(x: ArrayLike, y: ArrayLike, max_points: int = 1000) -> Array:
    """Median pairwise Euclidean distance of the pooled sample (at most ``max_points`` evenly
    strided points from each of ``x`` and ``y``; weights are ignored)."""
    x, y = _check_pair(x, y)
    max_points = _checks.positive_int("max_points", max_points)
    z = jnp.concatenate([x[:: max(1, -(-x.shape[0] // max_points))], y[:: max(1, -(-y.shape[0] // max_points))]])
    return _median_distance(z)


@jax.jit
def _median_distance(z: Array) -> Array:
    z = z - jnp.mean(z, 0)
    iu = np.triu_indices(z.shape[0], 1)  # static: computed at trace time
    return jnp.sqrt(jnp.median(_sq_dists(z, z)[iu]))


def mmd(
    x: ArrayLike,
    y: ArrayLike,
    bandwidths: ArrayLike | None = None,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
    *,
    x_log_weights: ArrayLike | None = None,
    y_log_weights: ArrayLike | None = None,
    unbiased: bool = False,
    squared: bool = False,
    block_size: int = 512,
) -> Array:
    """Maximum mean discrepancy with a sum of RBF kernels (Gretton et al. 2012).

    Kernel ``k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2))`` over ``bandwidths`` h; by default
    h in {0.25, 0.5, 1, 2, 4} x the :func:`median_heuristic` of the pooled sample.

    * V-statistic (default): ``MMD^2 = wx'Kxx wx + wy'Kyy wy - 2 wx'Kxy wy`` (>= 0, biased
      upwards by about ``(K - E k(X, X')) (1/n + 1/m)``, K = number of bandwidths).
    * ``unbiased=True``: U-statistic; the diagonal of Kxx, Kyy is dropped and
      ``sum_{i != j} w_i w_j k_ij`` is divided by ``1 - sum_i w_i^2`` (uniform weights:
      ``1 / (n (n - 1))``). Unbiased for i.i.d. samples, so it can be negative.

    Returns ``MMD^2`` when ``squared=True``, else ``sqrt(max(MMD^2, 0))``.
    """
    x, y = _check_pair(x, y)
    block_size = _checks.positive_int("block_size", block_size)
    wx = _weights("x", x.shape[0], x_weights, x_log_weights, x.dtype)
    wy = _weights("y", y.shape[0], y_weights, y_log_weights, y.dtype)
    if unbiased:
        if x.shape[0] < 2 or y.shape[0] < 2:
            raise ValueError("`unbiased=True` needs at least two samples in `x` and in `y`")
        for name, w in (("x", wx), ("y", wy)):
            if not isinstance(w, jax.core.Tracer) and float(jnp.sum(w**2)) > 1.0 - 1e-6:
                raise ValueError(f"`{name}_weights` put all mass on one point: the unbiased MMD is undefined")
    if bandwidths is None:
        bandwidths = median_heuristic(x, y) * jnp.asarray(DEFAULT_BANDWIDTH_FACTORS, x.dtype)
    else:
        bandwidths = jnp.atleast_1d(jnp.asarray(bandwidths, x.dtype))
        if bandwidths.ndim != 1:
            raise ValueError(f"`bandwidths` must be a scalar or a 1-D array, got shape {bandwidths.shape}")
        if not isinstance(bandwidths, jax.core.Tracer) and not np.all(np.asarray(bandwidths) > 0):
            raise ValueError("`bandwidths` must be positive and finite")
    m2 = _mmd2(x, y, wx, wy, bandwidths, block_size, bool(unbiased))
    return m2 if squared else jnp.sqrt(jnp.maximum(m2, 0.0))


@jax.jit(static_argnames=("block", "unbiased"))
def _mmd2(x, y, wx, wy, bandwidths, block, unbiased):
    shift = 0.5 * (jnp.mean(x, 0) + jnp.mean(y, 0))  # centring reduces cancellation in |a|^2+|b|^2-2ab
    x, y = x - shift, y - shift
    inv = 1.0 / (2.0 * bandwidths**2)

    def kernel(a, b):
        d2 = _sq_dists(a, b)
        # a Python loop over the (static number of) bandwidths keeps memory at one (block, m) array
        return sum(jnp.exp(-d2 * inv[i]) for i in range(bandwidths.shape[0]))

    kxx = _blocked_quadratic_form(kernel, x, wx, x, wx, block)
    kyy = _blocked_quadratic_form(kernel, y, wy, y, wy, block)
    kxy = _blocked_quadratic_form(kernel, x, wx, y, wy, block)
    if unbiased:
        k0 = bandwidths.shape[0]  # k(a, a) = number of bandwidths
        sx, sy = jnp.sum(wx**2), jnp.sum(wy**2)
        kxx = (kxx - k0 * sx) / (1.0 - sx)
        kyy = (kyy - k0 * sy) / (1.0 - sy)
    return kxx + kyy - 2 * kxy


def energy_distance(
    x: ArrayLike,
    y: ArrayLike,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
    *,
    x_log_weights: ArrayLike | None = None,
    y_log_weights: ArrayLike | None = None,
    block_size: int = 512,
) -> Array:
    """Energy distance ``D = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` (Székely & Rizzo 2013),
    the weighted V-statistic: expectations are sums against ``wx wy``, ``wx wx``, ``wy wy``.

    In 1-D it equals ``scipy.stats.energy_distance(u, v, u_weights, v_weights)``.
    """
    x, y = _check_pair(x, y)
    block_size = _checks.positive_int("block_size", block_size)
    wx = _weights("x", x.shape[0], x_weights, x_log_weights, x.dtype)
    wy = _weights("y", y.shape[0], y_weights, y_log_weights, y.dtype)
    return _energy(x, y, wx, wy, block_size)


@jax.jit(static_argnames=("block",))
def _energy(x, y, wx, wy, block):
    shift = 0.5 * (jnp.mean(x, 0) + jnp.mean(y, 0))
    x, y = x - shift, y - shift

    def kernel(a, b):
        return jnp.sqrt(_sq_dists(a, b))

    exy = _blocked_quadratic_form(kernel, x, wx, y, wy, block)
    exx = _blocked_quadratic_form(kernel, x, wx, x, wx, block)
    eyy = _blocked_quadratic_form(kernel, y, wy, y, wy, block)
    return jnp.sqrt(jnp.maximum(2 * exy - exx - eyy, 0.0))
