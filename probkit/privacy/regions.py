"""Privacy regions: (eps, delta) bounds on membership tests, trade-off curves, GDP conversions.

A membership test (attack) against an (eps, delta)-DP mechanism with false-positive rate
``alpha`` and false-negative rate ``beta`` satisfies (Kairouz et al. 2015; Dong, Roth & Su 2019,
arXiv:1905.02383)

    alpha + e^eps beta >= 1 - delta   and   beta + e^eps alpha >= 1 - delta,

so observed rates give the lower bound

    eps >= max(log((1 - delta - alpha) / beta), log((1 - delta - beta) / alpha), 0).

This is the map that Zanella-Béguelin et al. (2023, "Bayesian Estimation of Differential
Privacy", ICML, arXiv:2206.05199) push the posterior of (alpha, beta) through.

Trade-off curves ``f(alpha) = beta`` (the smallest type-II error at type-I error alpha) of
standard mechanisms, and conversions between mu-GDP, (eps, delta) and trade-off curves, are
provided for ground truth in tests, simulations and plots. Everything here is a pure
``jax.numpy`` function, vectorised by broadcasting; argument checks run on concrete inputs only.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri

__all__ = [
    "epsilon_from_rates",
    "delta_from_rates",
    "gaussian_tradeoff",
    "laplace_tradeoff",
    "randomized_response_tradeoff",
    "eps_delta_tradeoff",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "tradeoff_epsilon",
    "tradeoff_delta",
]

Array = jax.Array


# ----------------------------------------------------------------------------- validation
def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_open_unit(name: str, x) -> None:
    """Raise ValueError unless every entry of concrete ``x`` is finite and in (0, 1)."""
    if not _is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0.0) or np.any(a >= 1.0):
        raise ValueError(f"{name} must lie in the open interval (0, 1); got {x!r}")


def _check_closed_unit(name: str, x) -> None:
    if not _is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0.0) or np.any(a > 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {x!r}")


def _check_nonnegative(name: str, x, strict: bool = False) -> None:
    if not _is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    bad = (a <= 0.0) if strict else (a < 0.0)
    if not np.all(np.isfinite(a)) or np.any(bad):
        kind = "positive" if strict else "non-negative"
        raise ValueError(f"{name} must be finite and {kind}; got {x!r}")


def _check_delta(delta) -> None:
    _check_open_unit("delta", delta)


def _check_counts(fp, n_negative, fn, n_positive) -> None:
    """Validate attack outcome counts (concrete integers) and name the offending argument."""
    for name, v in (("fp", fp), ("n_negative", n_negative), ("fn", fn), ("n_positive", n_positive)):
        a = np.asarray(v)
        if a.ndim != 0:
            raise ValueError(f"{name} must be a scalar count; got shape {a.shape}")
        if not np.isfinite(a) or a < 0 or float(a) != np.floor(float(a)):
            raise ValueError(f"{name} must be a non-negative integer count; got {v!r}")
    if n_negative <= 0:
        raise ValueError(f"n_negative must be positive; got {n_negative!r}")
    if n_positive <= 0:
        raise ValueError(f"n_positive must be positive; got {n_positive!r}")
    if fp > n_negative:
        raise ValueError(f"fp={fp!r} exceeds n_negative={n_negative!r}")
    if fn > n_positive:
        raise ValueError(f"fn={fn!r} exceeds n_positive={n_positive!r}")


def _check_level(level) -> None:
    _check_open_unit("level", level)


# ----------------------------------------------------------------------------- rates <-> eps
def epsilon_from_rates(fpr, fnr, delta) -> Array:
    """Smallest eps consistent with an attack of rates (``fpr``, ``fnr``) under (eps, delta)-DP.

    ``eps = max(log((1 - delta - fpr) / fnr), log((1 - delta - fnr) / fpr), 0)``; a zero rate
    with a positive numerator gives ``inf``. Broadcasts over its arguments (jit/vmap-safe).
    """
    _check_closed_unit("fpr", fpr)
    _check_closed_unit("fnr", fnr)
    _check_delta(delta)
    fpr, fnr, delta = jnp.asarray(fpr), jnp.asarray(fnr), jnp.asarray(delta)
    dtype = jnp.result_type(fpr, fnr, delta, jnp.float32)
    fpr, fnr, delta = fpr.astype(dtype), fnr.astype(dtype), delta.astype(dtype)

    def one_side(num_rate, den_rate):
        num = 1.0 - delta - num_rate
        # log(num/den) where num > 0; +inf when den == 0 and num > 0; irrelevant (-inf) if num <= 0.
        safe_den = jnp.where(den_rate > 0, den_rate, 1.0)
        safe_num = jnp.where(num > 0, num, 1.0)
        val = jnp.log(safe_num) - jnp.log(safe_den)
        val = jnp.where(den_rate > 0, val, jnp.inf)
        return jnp.where(num > 0, val, -jnp.inf)

    eps = jnp.maximum(one_side(fpr, fnr), one_side(fnr, fpr))
    return jnp.maximum(eps, 0.0)


def _eps64(fpr, fnr, delta) -> np.ndarray:
    """:func:`epsilon_from_rates` in float64 NumPy, unvalidated and broadcasting: reference
    values (frequentist bounds, the support of the eps posterior) at tiny delta, where float32
    cannot resolve ``1 - delta``."""
    a, b = np.asarray(fpr, np.float64), np.asarray(fnr, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = np.where(1 - delta - a > 0, np.log(np.maximum(1 - delta - a, 1e-300)) - np.log(b), -np.inf)
        s2 = np.where(1 - delta - b > 0, np.log(np.maximum(1 - delta - b, 1e-300)) - np.log(a), -np.inf)
    return np.maximum(np.maximum(s1, s2), 0.0)


def delta_from_rates(fpr, fnr, eps) -> Array:
    """Smallest delta consistent with rates (``fpr``, ``fnr``) at a given ``eps``:
    ``max(1 - fpr - e^eps fnr, 1 - fnr - e^eps fpr, 0)``."""
    _check_closed_unit("fpr", fpr)
    _check_closed_unit("fnr", fnr)
    _check_nonnegative("eps", eps)
    e = jnp.exp(jnp.asarray(eps, dtype=jnp.result_type(eps, jnp.float32)))
    return jnp.maximum(jnp.maximum(1.0 - fpr - e * fnr, 1.0 - fnr - e * fpr), 0.0)


# ----------------------------------------------------------------------------- trade-off curves
def gaussian_tradeoff(alpha, mu) -> Array:
    """Trade-off curve of mu-GDP / the Gaussian mechanism with mu = sensitivity / sigma:
    ``beta(alpha) = Phi(Phi^{-1}(1 - alpha) - mu)`` (Dong, Roth & Su 2019, arXiv:1905.02383)."""
    _check_closed_unit("alpha", alpha)
    _check_nonnegative("mu", mu)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    return ndtr(ndtri(1.0 - alpha) - mu)


def _laplace_cdf(x):
    return jnp.where(x < 0, 0.5 * jnp.exp(jnp.minimum(x, 0.0)), 1.0 - 0.5 * jnp.exp(-jnp.maximum(x, 0.0)))


def _laplace_quantile(p):
    return jnp.where(p < 0.5, jnp.log(2.0 * jnp.minimum(p, 0.5)), -jnp.log(2.0 * (1.0 - jnp.maximum(p, 0.5))))


def laplace_tradeoff(alpha, eps) -> Array:
    """Trade-off curve of the Laplace mechanism with ``eps = sensitivity / scale``: the optimal
    test between Lap(0, 1) and Lap(eps, 1), ``beta(alpha) = F(F^{-1}(1 - alpha) - eps)`` with F the
    standard Laplace CDF (Dong, Roth & Su 2019)."""
    _check_closed_unit("alpha", alpha)
    _check_nonnegative("eps", eps)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    return _laplace_cdf(_laplace_quantile(1.0 - alpha) - eps)


def eps_delta_tradeoff(alpha, eps, delta) -> Array:
    """Trade-off curve of (eps, delta)-DP:
    ``f(alpha) = max(0, 1 - delta - e^eps alpha, e^-eps (1 - delta - alpha))``."""
    _check_closed_unit("alpha", alpha)
    _check_nonnegative("eps", eps)
    _check_closed_unit("delta", delta)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    e = jnp.exp(jnp.asarray(eps, dtype=alpha.dtype))
    return jnp.maximum(jnp.maximum(1.0 - delta - e * alpha, (1.0 - delta - alpha) / e), 0.0)


def randomized_response_tradeoff(alpha, eps) -> Array:
    """Trade-off curve of binary randomized response (truthful with probability
    e^eps / (1 + e^eps)); it equals the curve of pure eps-DP, ``max(0, 1 - e^eps alpha,
    e^-eps (1 - alpha))`` (randomised tests allowed)."""
    return eps_delta_tradeoff(alpha, eps, 0.0)


# ----------------------------------------------------------------------------- GDP conversions
def gdp_delta(eps, mu) -> Array:
    """delta(eps) of mu-GDP: ``Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)``
    (Dong, Roth & Su 2019, Cor. 2.13), the second term in log space to avoid overflow."""
    _check_nonnegative("eps", eps)
    _check_nonnegative("mu", mu, strict=True)
    eps = jnp.asarray(eps, dtype=jnp.result_type(eps, mu, jnp.float32))
    mu = jnp.asarray(mu, dtype=eps.dtype)
    first = ndtr(-eps / mu + mu / 2.0)
    second = jnp.exp(eps + log_ndtr(-eps / mu - mu / 2.0))
    return jnp.clip(first - second, 0.0, 1.0)


def _bisect(fn: Callable[[Array], Array], lo: Array, hi: Array, num_iter: int = 100) -> Array:
    """Vectorised bisection for a decreasing-to-increasing sign change: returns x with
    fn(x) ~ 0 given fn(lo) >= 0 >= fn(hi) elementwise (fixed iteration count, jit-safe)."""

    def body(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        pos = fn(mid) >= 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, num_iter, body, (lo, hi))
    return 0.5 * (lo + hi)


def gdp_epsilon(delta, mu) -> Array:
    """eps(delta) of mu-GDP: the root of ``gdp_delta(eps, mu) = delta`` (0 if delta(0) <= delta).

    Bracket: ``delta(eps) <= Phi(-eps/mu + mu/2)``, so ``eps_hi = mu (mu/2 - Phi^{-1}(delta))``
    has ``delta(eps_hi) <= delta``; bisection on [0, eps_hi] (delta(eps) is decreasing).
    """
    _check_delta(delta)
    _check_nonnegative("mu", mu, strict=True)
    delta = jnp.asarray(delta, dtype=jnp.result_type(delta, mu, jnp.float32))
    mu = jnp.asarray(mu, dtype=delta.dtype)
    delta, mu = jnp.broadcast_arrays(delta, mu)
    hi = jnp.maximum(mu * (mu / 2.0 - ndtri(delta)), 0.0) + 1e-6
    eps = _bisect(lambda e: gdp_delta(e, mu) - delta, jnp.zeros_like(hi), hi)
    return jnp.where(gdp_delta(jnp.zeros_like(mu), mu) <= delta, 0.0, eps)


def gdp_mu(eps, delta) -> Array:
    """The mu for which mu-GDP has exactly ``delta(eps) = delta`` (delta increases with mu).

    Used to build Gaussian mechanisms with a known (eps, delta)."""
    _check_nonnegative("eps", eps)
    _check_delta(delta)
    eps = jnp.asarray(eps, dtype=jnp.result_type(eps, delta, jnp.float32))
    delta = jnp.asarray(delta, dtype=eps.dtype)
    eps, delta = jnp.broadcast_arrays(eps, delta)
    # delta(eps; mu) >= Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2) ... bracket generously:
    # at mu = 2 (eps + 10) + 20 the first term is ~1 and the second negligible for delta < 1.
    hi = 2.0 * (eps + 10.0) + 20.0
    return _bisect(lambda m: delta - gdp_delta(eps, jnp.maximum(m, 1e-12)), jnp.full_like(eps, 1e-12), hi)


# ----------------------------------------------------------------------------- trade-off -> eps
def _alpha_grid(num: int) -> Array:
    # Log-spaced near 0 and 1 (where the supremum sits for small delta) plus a linear middle.
    tail = jnp.logspace(-12, jnp.log10(0.5), num // 2)
    return jnp.sort(jnp.concatenate([tail, 1.0 - tail[::-1], jnp.linspace(0.0, 1.0, num)]))


def tradeoff_epsilon(tradeoff_fn: Callable[[Array], Array], delta, num_grid: int = 20001) -> Array:
    """eps at ``delta`` implied by a trade-off curve: ``sup_alpha epsilon_from_rates(alpha,
    f(alpha), delta)`` on a fine grid of alpha (a lower bound converging from below).

    For delta far below float32 resolution relative to 1 (e.g. 1e-5), ``1 - delta - f(alpha)``
    cancels; run under ``jax.enable_x64(True)`` for accurate values."""
    _check_delta(delta)
    alpha = _alpha_grid(num_grid)
    return jnp.max(epsilon_from_rates(alpha, jnp.clip(tradeoff_fn(alpha), 0.0, 1.0), delta))


def tradeoff_delta(tradeoff_fn: Callable[[Array], Array], eps, num_grid: int = 20001) -> Array:
    """delta at ``eps`` implied by a trade-off curve: ``sup_alpha max(1 - alpha - e^eps f(alpha),
    1 - f(alpha) - e^eps alpha, 0)`` on a fine grid of alpha."""
    _check_nonnegative("eps", eps)
    alpha = _alpha_grid(num_grid)
    return jnp.max(delta_from_rates(alpha, jnp.clip(tradeoff_fn(alpha), 0.0, 1.0), eps))
