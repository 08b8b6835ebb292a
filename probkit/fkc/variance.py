r"""Low-variance options for Feynman-Kac correctors: cached trapezoid weights, weight schedules
(late start / tempering) and mode-mass estimators.

Why mode masses are noisy. Once the modes of the path q̃_t have separated, no transition moves a
particle from one mode to another, so the mass of a mode changes only through (a) the weights,
whose increments h r(x, t) fluctuate from particle to particle, and (b) resampling, which draws
offspring counts at random. With the particles in arbitrary order, systematic resampling gives a
particle N W_i offspring up to a Bernoulli remainder and these remainders are summed over the
mode: every resampling step adds O(p(1 - p)/N · E|N W - 1|) to the variance of a mode mass, and
over K steps this piles up to many times the binomial floor p(1 - p)/N.

**Ordered resampling** (:mod:`probkit.smc.resampling`, Gerber, Chopin & Whiteley 2019) sorts
the particles along a Hilbert curve before systematic resampling, so each mode is a contiguous
block of the cumulative weights and passes through resampling with its mass almost unchanged.
**A larger proposal noise** (eta = 2 g) makes the Langevin part of the proposal mix particles
*within* each mode faster, so the weight increments of a mode's particles decorrelate over steps
and average out instead of piling up. The FKC recipes use both by default (docs/fkc.md has the
study, ``benchmarks/fkc_variance.py``).

:func:`fkc_variance_model` is the FKC model of :func:`probkit.fkc.fkc_model` with two extra
options, both consistent (the product of the applied potentials along every path equals the
product of the FK increments, so the path-space Feynman-Kac measure and the evidence are
unchanged):

* ``rule="trapezoid"``: log G_k = h/2 [r(x_k, t_k) + r(x_{k+1}, t_{k+1})] instead of Euler's
  h r(x_k, t_k). The scores at the new point are needed by the next step's drift anyway, so the
  particle caches them (one score evaluation per step, plus one at the start).
* ``weight_schedule``: a function t -> λ(t) ∈ [0, 1]. Each particle carries a pending log-weight
  ("debt"); at the step ending at t it applies λ(t) of (debt + increment) and keeps the rest,
  and everything is applied at the last step. λ = 1[t <= t_start] is a **late start** of
  weighting/resampling; a constant λ < 1 **tempers** the weights across steps (an exponential
  moving average of the increments).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from probkit.diffusion.schedules import Process
from probkit.diffusion.sde import euler_maruyama_step
from probkit.fkc.recipes import _eta_fn, weight_rate
from probkit.smc.correctors import MoveTarget
from probkit.smc.feynman_kac import FeynmanKacModel
from probkit.smc.resampling import ordered  # noqa: F401  (re-exported for convenience)

Array = jax.Array

__all__ = [
    "ordered",
    "VParticle",
    "fkc_variance_model",
    "late_start",
    "tempered",
    "mode_masses",
]


# ----------------------------------------------------------------------------------------------
# weight schedules
def late_start(t_start: float) -> Callable[[Array], Array]:
    """λ(t) = 1[t <= t_start]: no weighting (hence no resampling) before t_start; the whole
    accumulated log-weight is applied at the first step ending at or below t_start."""
    if not (isinstance(t_start, (int, float)) and 0.0 < t_start <= 1.0):
        raise ValueError(f"`t_start` must lie in (0, 1], got {t_start!r}")
    return lambda t: (t <= t_start).astype(jnp.result_type(float))


def tempered(fraction: float) -> Callable[[Array], Array]:
    """λ(t) = fraction: apply a fixed fraction of the pending log-weight at every step."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
        raise ValueError(f"`fraction` must lie in (0, 1], got {fraction!r}")
    return lambda t: jnp.asarray(fraction, jnp.result_type(float))


# ----------------------------------------------------------------------------------------------
class VParticle(NamedTuple):
    """Position, the applied log-potential of the last step, the expert scores and the weight
    rate cached at (x, t), and the pending (not yet applied) log-weight."""

    x: Array
    log_g: Array
    scores: Array
    rate: Array
    debt: Array


def fkc_variance_model(
    process: Process,
    score_fns: Sequence[Callable[[Array, Array], Array]],
    exponents: Sequence[float],
    shape: tuple[int, ...],
    *,
    t_end: float,
    eta: float | Callable[[Array], Array] | None = None,
    rule: str = "euler",
    weight_schedule: Callable[[Array], Array] | None = None,
    logdensity_fns: Sequence[Callable[[Array, Array], Array]] | None = None,
) -> tuple[FeynmanKacModel, MoveTarget]:
    """FKC model (Skreta et al. 2025, arXiv 2503.02819) with cached scores, the trapezoid rule
    for the weight increments and a weight schedule (see the module docstring).

    ``t_end`` is the last time of the grid (where all pending weight is applied). Costs one
    score evaluation per expert per step, plus one at the start (``nfe_init``) and one per
    corrector application (``set_position`` recomputes the cache)."""
    if rule not in ("euler", "trapezoid"):
        raise ValueError(f"`rule` must be 'euler' or 'trapezoid', got {rule!r}")
    b = tuple(float(v) for v in exponents)
    big_b = sum(b)
    shape = tuple(int(s) for s in shape)
    dim = int(np.prod(shape))
    dtype = jnp.result_type(float)
    var0 = float(process.prior_scale()) ** 2
    b_arr = jnp.asarray(b, dtype)
    eta_of_t = _eta_fn(process, eta)  # None: the recipes' default (2 - t) g(t)
    t_end = float(t_end)

    def cache(x, t):
        scores = jnp.stack([fn(x, t) for fn in score_fns])
        rate = weight_rate(process, list(scores), b_arr, t, dim)
        return scores, rate.astype(dtype)

    target_logdensity = None
    if logdensity_fns is not None:

        def target_logdensity(x, t):
            return sum(bi * fn(x, t) for bi, fn in zip(b, logdensity_fns))

    def init(key):
        x = math.sqrt(var0 / big_b) * jax.random.normal(key, shape, dtype)
        scores, rate = cache(x, jnp.asarray(1.0, dtype))
        zero = jnp.zeros((), dtype)
        return VParticle(x, zero, scores, rate, zero)

    if logdensity_fns is not None:

        def init_log_weight(p):
            return target_logdensity(p.x, jnp.asarray(1.0, dtype)) - process.prior_log_prob(p.x, big_b)

    else:
        log_z1 = 0.5 * dim * (1.0 - big_b) * math.log(2 * math.pi * var0) - 0.5 * dim * math.log(big_b)

        def init_log_weight(p):
            return jnp.asarray(log_z1, dtype)

    def transition(key, t, t_next, p):
        h = t - t_next
        total = jnp.tensordot(b_arr, p.scores, axes=1)
        z = jax.random.normal(key, p.x.shape, p.x.dtype)
        x_new = euler_maruyama_step(process, p.x, total, t, h, z, eta_of_t(t))
        scores, rate = cache(x_new, t_next)
        inc = h * p.rate if rule == "euler" else 0.5 * h * (p.rate + rate)
        if weight_schedule is None:
            applied, debt = inc, p.debt
        else:
            pending = p.debt + inc
            lam = jnp.where(t_next <= t_end * (1 + 1e-6) + 1e-9, 1.0, weight_schedule(t_next)).astype(dtype)
            applied, debt = lam * pending, (1.0 - lam) * pending
        return VParticle(x_new, applied.astype(dtype), scores, rate, debt.astype(dtype))

    def log_potential(t, t_next, prev, new):
        return new.log_g

    def set_position(p, x, t):
        scores, rate = cache(x, t)
        return p._replace(x=x, scores=scores, rate=rate)

    def target_score(x, t):
        return sum(bi * fn(x, t) for bi, fn in zip(b, score_fns))

    return (FeynmanKacModel(init, transition, log_potential, init_log_weight),
            MoveTarget(target_logdensity, target_score, lambda p: p.x, set_position))


# ----------------------------------------------------------------------------------------------
def mode_masses(x: Array, log_weights: Array, log_resp_fn: Callable[[Array], Array], *, soft: bool = False) -> Array:
    """Weighted mode masses Σ_i W_i 1[argmax_k ρ_k(x_i) = k] (hard) or Σ_i W_i ρ_k(x_i) (soft,
    Rao-Blackwellised over the component label), for ``log_resp_fn(x) -> (K,)`` unnormalised
    log responsibilities of ONE point (e.g. ``GaussianMixture.component_log_probs``)."""
    lr = jax.vmap(log_resp_fn)(x)
    r = jax.nn.softmax(lr, axis=-1) if soft else jax.nn.one_hot(jnp.argmax(lr, axis=-1), lr.shape[-1], dtype=lr.dtype)
    w = jnp.exp(log_weights - jax.nn.logsumexp(log_weights))
    return w @ r
