"""Privacy regions: (eps, delta) bounds on membership tests, trade-off curves, GDP conversions.

A membership test (attack) against an (eps, delta)-DP mechanism with false-positive rate
``alpha`` and false-negative rate ``beta`` satisfies (Kairouz et al. 2015; Dong, Roth & Su 2019,
arXiv:1905.02383)

    alpha + e^eps beta >= 1 - delta   and   beta + e^eps alpha >= 1 - delta,

so observed rates give the lower bound

    eps >= max(log((1 - delta - alpha) / beta), log((1 - delta - beta) / alpha), 0),

and its flip (rates (1 - beta, 1 - alpha)) obeys the same bounds (:func:`epsilon_from_rates`).
This is the map that Zanella-Béguelin et al. (2023, "Bayesian Estimation of Differential
Privacy", ICML, arXiv:2206.05199) push the posterior of (alpha, beta) through. Trade-off curves
``f(alpha) = beta`` (the smallest type-II error at type-I error alpha) of standard mechanisms and
the mu-GDP conversions are ground truth for tests, simulations and plots. Everything here is a
pure ``jax.numpy`` function, vectorised by broadcasting; argument checks run on concrete inputs
only; ``delta = 0`` (pure DP) is allowed wherever the formula is finite.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri
from jax.scipy.stats import laplace

from probkit._checks import is_traced
from probkit.privacy._checks import check_closed_unit, check_delta, check_nonnegative, eps_one_sided

__all__ = [
    "epsilon_from_rates", "delta_from_rates", "gaussian_tradeoff", "laplace_tradeoff",
    "randomized_response_tradeoff", "eps_delta_tradeoff", "claims_tradeoff", "gdp_delta", "gdp_epsilon", "gdp_mu",
    "gdp_mu_from_rates", "tradeoff_epsilon", "tradeoff_delta",
]

Array = jax.Array


# ----------------------------------------------------------------------------- rates <-> eps
def epsilon_from_rates(fpr, fnr, delta, symmetric: bool = True) -> Array:
    """Smallest eps consistent with an attack of rates (``fpr``, ``fnr``) under (eps, delta)-DP.

    Lower-left half of the region: ``eps = max(log((1 - delta - fpr) / fnr),
    log((1 - delta - fnr) / fpr), 0)``. The full (symmetric) region also bounds the flipped
    attack (every guess negated, rates ``(1 - fnr, 1 - fpr)``): an attack worse than random
    (``fpr + fnr > 1``) is as informative as its flip, so FPR = FNR = 0.9 gives
    ``log(0.9 / 0.1)``. ``symmetric=False`` keeps the lower-left half only (0 above the
    diagonal). A zero rate with a positive numerator gives ``inf``. ``delta = 0`` is pure DP.
    Broadcasts over its arguments (jit/vmap-safe).
    """
    check_closed_unit("fpr", fpr)
    check_closed_unit("fnr", fnr)
    check_delta(delta)
    dtype = jnp.result_type(fpr, fnr, delta, jnp.float32)
    fpr, fnr, delta = (jnp.asarray(v, dtype) for v in (fpr, fnr, delta))
    eps = eps_one_sided(fpr, fnr, delta, jnp)
    if symmetric:
        eps = jnp.maximum(eps, eps_one_sided(1.0 - fnr, 1.0 - fpr, delta, jnp))
    return eps


def delta_from_rates(fpr, fnr, eps) -> Array:
    """Smallest delta consistent with rates (``fpr``, ``fnr``) at a given ``eps`` (symmetric
    region): ``max(1 - fpr - e^eps fnr, 1 - fnr - e^eps fpr, fpr - e^eps (1 - fnr),
    fnr - e^eps (1 - fpr), 0)``, the last two for the flipped attack."""
    check_closed_unit("fpr", fpr)
    check_closed_unit("fnr", fnr)
    check_nonnegative("eps", eps)
    e = jnp.exp(jnp.asarray(eps, dtype=jnp.result_type(eps, jnp.float32)))
    low = jnp.maximum(1.0 - fpr - e * fnr, 1.0 - fnr - e * fpr)
    high = jnp.maximum(fpr - e * (1.0 - fnr), fnr - e * (1.0 - fpr))
    return jnp.maximum(jnp.maximum(low, high), 0.0)


# ----------------------------------------------------------------------------- trade-off curves
def gaussian_tradeoff(alpha, mu) -> Array:
    """Trade-off curve of mu-GDP / the Gaussian mechanism with mu = sensitivity / sigma:
    ``beta(alpha) = Phi(Phi^{-1}(1 - alpha) - mu)`` (Dong, Roth & Su 2019, arXiv:1905.02383)."""
    check_closed_unit("alpha", alpha)
    check_nonnegative("mu", mu)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    return ndtr(ndtri(1.0 - alpha) - mu)


def laplace_tradeoff(alpha, eps) -> Array:
    """Trade-off curve of the Laplace mechanism with ``eps = sensitivity / scale``: the optimal
    test between Lap(0, 1) and Lap(eps, 1), ``beta(alpha) = F(F^{-1}(1 - alpha) - eps)`` with F the
    standard Laplace CDF (Dong, Roth & Su 2019)."""
    check_closed_unit("alpha", alpha)
    check_nonnegative("eps", eps)
    p = 1.0 - jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    quantile = jnp.where(p < 0.5, jnp.log(2.0 * jnp.minimum(p, 0.5)), -jnp.log(2.0 * (1.0 - jnp.maximum(p, 0.5))))
    return laplace.cdf(quantile - eps)


def eps_delta_tradeoff(alpha, eps, delta) -> Array:
    """Trade-off curve of (eps, delta)-DP:
    ``f(alpha) = max(0, 1 - delta - e^eps alpha, e^-eps (1 - delta - alpha))``."""
    check_closed_unit("alpha", alpha)
    check_nonnegative("eps", eps)
    check_closed_unit("delta", delta)
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(alpha, jnp.float32))
    e = jnp.exp(jnp.asarray(eps, dtype=alpha.dtype))
    return jnp.maximum(jnp.maximum(1.0 - delta - e * alpha, (1.0 - delta - alpha) / e), 0.0)


def randomized_response_tradeoff(alpha, eps) -> Array:
    """Trade-off curve of binary randomized response (truthful with probability
    e^eps / (1 + e^eps)); it equals the curve of pure eps-DP, ``max(0, 1 - e^eps alpha,
    e^-eps (1 - alpha))`` (randomised tests allowed)."""
    return eps_delta_tradeoff(alpha, eps, 0.0)


def claims_tradeoff(alpha, eps, delta) -> Array:
    """Trade-off curve of the intersection of several (eps_i, delta_i) claims: a mechanism that
    satisfies all of them has ``f(alpha) = max_i eps_delta_tradeoff(alpha, eps_i, delta_i)``.

    ``eps`` and ``delta`` are equal-length 1-D sequences of claims; ``alpha`` broadcasts. E.g. the
    claims (e1, 0) and (0, d) give a curve whose eps at delta' in [0, d] is
    ``log(1 + (d - delta') (e^e1 - 1) / d)`` (see :func:`tradeoff_epsilon`).
    """
    eps, delta = jnp.atleast_1d(jnp.asarray(eps)), jnp.atleast_1d(jnp.asarray(delta))
    dtype = jnp.result_type(eps, delta, jnp.float32)
    eps, delta = eps.astype(dtype), delta.astype(dtype)
    if eps.ndim != 1 or eps.shape != delta.shape:
        raise ValueError(f"eps and delta must be 1-D sequences of equal length; got shapes {eps.shape} and {delta.shape}")
    check_nonnegative("eps", eps)
    check_delta(delta)
    check_closed_unit("alpha", alpha)
    return jnp.max(eps_delta_tradeoff(jnp.asarray(alpha, dtype=eps.dtype)[..., None], eps, delta), axis=-1)


def gdp_mu_from_rates(fpr, fnr) -> Array:
    """Smallest mu for which an attack with rates (``fpr``, ``fnr``) is consistent with mu-GDP:
    ``fnr >= G_mu(fpr) = Phi(Phi^-1(1 - fpr) - mu)`` iff ``mu >= -Phi^-1(fpr) - Phi^-1(fnr)``;
    with the flipped attack, ``|Phi^-1(fpr) + Phi^-1(fnr)|`` (Dong, Roth & Su 2019)."""
    check_closed_unit("fpr", fpr)
    check_closed_unit("fnr", fnr)
    fpr = jnp.asarray(fpr, dtype=jnp.result_type(fpr, fnr, jnp.float32))
    return jnp.abs(ndtri(fpr) + ndtri(jnp.asarray(fnr, fpr.dtype)))


# ----------------------------------------------------------------------------- GDP conversions
def gdp_delta(eps, mu) -> Array:
    """delta(eps) of mu-GDP: ``Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)``
    (Dong, Roth & Su 2019, Cor. 2.13), the second term in log space to avoid overflow."""
    check_nonnegative("eps", eps)
    check_nonnegative("mu", mu, strict=True)
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
    """eps(delta) of mu-GDP: the root of ``gdp_delta(eps, mu) = delta`` (0 if delta(0) <= delta;
    ``inf`` at delta = 0).

    Bracket: ``delta(eps) <= Phi(-eps/mu + mu/2)``, so ``eps_hi = mu (mu/2 - Phi^{-1}(delta))``
    has ``delta(eps_hi) <= delta``; bisection on [0, eps_hi] (delta(eps) is decreasing).
    """
    check_delta(delta)
    check_nonnegative("mu", mu, strict=True)
    delta = jnp.asarray(delta, dtype=jnp.result_type(delta, mu, jnp.float32))
    mu = jnp.asarray(mu, dtype=delta.dtype)
    delta, mu = jnp.broadcast_arrays(delta, mu)
    safe = jnp.where(delta > 0, delta, 0.5)
    hi = jnp.maximum(mu * (mu / 2.0 - ndtri(safe)), 0.0) + 1e-6
    eps = _bisect(lambda e: gdp_delta(e, mu) - safe, jnp.zeros_like(hi), hi)
    eps = jnp.where(delta > 0, eps, jnp.inf)  # mu-GDP (mu > 0) is not pure DP
    return jnp.where(gdp_delta(jnp.zeros_like(mu), mu) <= delta, 0.0, eps)


def gdp_mu(eps, delta) -> Array:
    """The mu for which mu-GDP has exactly ``delta(eps) = delta`` (delta increases with mu).

    Used to build Gaussian mechanisms with a known (eps, delta). ``delta = 0`` is refused: no
    mu > 0 gives pure DP."""
    check_nonnegative("eps", eps)
    if not is_traced(delta) and np.any(np.asarray(delta) == 0):
        raise ValueError("delta must be positive: mu-GDP with mu > 0 is never (eps, 0)-DP")
    check_delta(delta)
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
    check_delta(delta)
    alpha = _alpha_grid(num_grid)
    return jnp.max(epsilon_from_rates(alpha, jnp.clip(tradeoff_fn(alpha), 0.0, 1.0), delta))


def tradeoff_delta(tradeoff_fn: Callable[[Array], Array], eps, num_grid: int = 20001) -> Array:
    """delta at ``eps`` implied by a trade-off curve: ``sup_alpha max(1 - alpha - e^eps f(alpha),
    1 - f(alpha) - e^eps alpha, 0)`` on a fine grid of alpha."""
    check_nonnegative("eps", eps)
    alpha = _alpha_grid(num_grid)
    return jnp.max(delta_from_rates(alpha, jnp.clip(tradeoff_fn(alpha), 0.0, 1.0), eps))
