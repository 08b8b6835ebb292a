r"""Baselines for posterior sampling with diffusion priors: DPS and twisted SMC (TDS).

Both have the call signature of :func:`probkit.inverse.ensemble` and run on the Feynman-Kac
engine (:func:`probkit.smc.run_smc`; DPS with zero potentials and no resampling), so one call
compares all three.

**DPS** — Chung, Kim, McCann, Klasky, Ye (2023), "Diffusion Posterior Sampling for General
Noisy Inverse Problems", ICLR, arXiv 2209.14687. A DDPM ancestral step with the prior score,
followed by a gradient step through Tweedie's denoiser x̂_0(x) = (x + σ_t² s(x, t))/α_t:

    x_{k+1} = DDPM(x_k) - ζ_k ∇ₓ ‖y - A x̂_0(x_k)‖²,   ζ_k = ζ / ‖y - A x̂_0(x_k)‖

(Gaussian likelihoods; for other likelihoods x_{k+1} = DDPM(x_k) + ζ ∇ₓ log l(x̂_0(x_k))). It
replaces p(y | x_t) by l(x̂_0(x_t)) and is biased: it does not sample the posterior.

**Twisted diffusion sampler (TDS)** — Wu, Trippe, Naesseth, Blei, Cunningham (2023), "Practical
and Asymptotically Exact Conditional Sampling in Diffusion Models", NeurIPS, arXiv 2306.17775.
Twisting functions p̃_t(y | x) = N(y; A x̂_0(x), s_y² I + c (σ_t/α_t)² A Aᵀ) (c = ``twist_c``;
c = 0 gives l(x̂_0(x)); non-Gaussian likelihoods use l(x̂_0(x))), proposal = Euler-Maruyama step
of the reverse SDE with the twisted score s + ∇ log p̃_t:

    x' ~ q(· | x) = N(x + h(-f + g² (s + ∇ log p̃_t(x))), g² h),

and incremental weights p(x' | x) p̃_{t'}(x') / (q(x' | x) p̃_t(x)), p the same Euler step with
the prior score; at the final step p̃ is replaced by the exact likelihood l(x'), so the
weighted particles target p_{t_min}(x) l(x) (asymptotically exact in N).

**NFE.** Both need ∇ₓ of a function of x̂_0(x), i.e. a vector-Jacobian product through the score
network at every step. We count NFE per step = 1 (forward) + ``vjp_cost`` (backward). For a
network, a backward pass costs about two forward passes (default ``vjp_cost=2``); for an exact
closed-form score (the mixture benchmarks) we count the VJP as one evaluation
(``vjp_cost=1``). The ensemble sampler needs no VJP (1 NFE per step).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from probkit.diffusion.integrators import IntegratorState, make_integrator
from probkit.diffusion.schedules import Process, time_grid
from probkit.diffusion.sde import denoise, euler_maruyama_kernel
from probkit.inverse.ensemble import validate_problem
from probkit.inverse.likelihoods import Likelihood, gaussian_path
from probkit import _checks
from probkit.smc.correctors import MoveTarget
from probkit.smc.feynman_kac import FeynmanKacModel, WeightedParticles, finish, make_config, run_model
from probkit._jit import filter_jit

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

__all__ = ["dps", "dps_model", "twisted_smc", "tds_model", "TDSParticle"]


def _denoiser_vjp(process: Process, score_fn: ScoreFn, x: Array, t: Array):
    """x̂_0(x), the pullback of x ↦ x̂_0(x) (one forward + VJP through the score) and s(x)."""

    def x0_fn(z):
        s = score_fn(z, t)
        return denoise(process, z, s, t), s

    return jax.vjp(x0_fn, x, has_aux=True)


def _common_checks(process, score_fn, likelihood, num_steps, vjp_cost, grid, t_min):
    """The checks of :func:`dps` and :func:`twisted_smc`; returns the time grid and ``vjp_cost``."""
    validate_problem(process, score_fn, likelihood, num_steps)
    vjp_cost = _checks.positive_int("vjp_cost", vjp_cost, minimum=0)
    return time_grid(process, int(num_steps), grid, t_min=t_min), vjp_cost


def dps_model(process: Process, score_fn: ScoreFn, likelihood: Likelihood, *, step_size: float = 1.0) -> FeynmanKacModel:
    """DPS as a Feynman-Kac model with zero potentials (particles: arrays of ``x_shape``)."""
    shape = likelihood.x_shape
    dtype = jnp.result_type(float)
    sd0 = float(process.prior_scale())

    def init(key):
        return sd0 * jax.random.normal(key, shape, dtype)

    def transition(key, t, t_next, x):
        x0, pullback, s = _denoiser_vjp(process, score_fn, x, t)
        (g_x,) = pullback(likelihood.grad_log_prob(x0))  # ∇ₓ log l(x̂_0(x))
        integ = make_integrator("ddpm", process, lambda x_, t_: s)
        x_new = integ.step(key, IntegratorState(x, ()), t, t_next).x
        if likelihood.kind == "gaussian":
            resid = jnp.sqrt(jnp.sum((likelihood.y - likelihood.operator.apply(x0)) ** 2))
            # ∇‖y - A x̂0‖² = -2 s_y² ∇ log l(x̂0)
            grad_sq = -2.0 * likelihood.noise_std**2 * g_x
            x_new = x_new - step_size / jnp.maximum(resid, 1e-12) * grad_sq
        else:
            x_new = x_new + step_size * g_x
        return x_new.astype(dtype)

    def log_potential(t, t_next, prev, new):
        return jnp.zeros((), dtype)

    return FeynmanKacModel(init=init, transition=transition, log_potential=log_potential)


def dps(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    likelihood: Likelihood,
    num_particles: int,
    num_steps: int,
    *,
    step_size: float = 1.0,
    vjp_cost: int = 2,
    grid: str = "uniform",
    t_min: float | None = None,
    **options,
) -> WeightedParticles:
    """Diffusion posterior sampling (Chung et al. 2023, arXiv 2209.14687); equally weighted
    independent samples (``log_weights`` uniform, never resampled). DPS has no evidence
    estimate: ``log_evidence`` is NaN (not 0.0), and ``ess`` = N says nothing about accuracy.

    ``step_size``: ζ of the normalised DPS step (Chung et al. use 0.1-1 for images).
    ``vjp_cost``: NFE charged for the VJP through the score (module docstring). ``**options``:
    the engine's options (:class:`probkit.smc.SMCConfig`, e.g. ``sharding``, ``progress``).
    """
    ts, vjp_cost = _common_checks(process, score_fn, likelihood, num_steps, vjp_cost, grid, t_min)
    step_size = _checks.scalar("step_size", step_size, low=0.0, as_array=True)
    config = make_config(num_particles, ts, **{"ess_threshold": 0.0, **options})
    out, flags = _dps_run(key, process, score_fn, likelihood, step_size, int(num_particles), ts, config, 1 + vjp_cost)
    return finish(out, flags)


@filter_jit
def _dps_run(key, process, score_fn, likelihood, step_size, num_particles, ts, config, nfe_per_step):
    with jax.ensure_compile_time_eval():
        model = dps_model(process, score_fn, likelihood, step_size=step_size)
    out, flags = run_model(key, model, num_particles, ts, config, nfe_per_step=nfe_per_step)
    return out._replace(log_evidence=jnp.full_like(out.log_evidence, jnp.nan)), flags  # no evidence estimate


class TDSParticle(NamedTuple):
    """Position, cached prior score, twist gradient and log-twist at the particle's time."""

    x: Array
    score: Array
    grad_twist: Array
    log_twist: Array


def tds_model(
    process: Process,
    score_fn: ScoreFn,
    likelihood: Likelihood,
    t_end: float,
    *,
    twist_c: float = 1.0,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    t_start: float = 1.0,
) -> tuple[FeynmanKacModel, MoveTarget]:
    """The twisted diffusion sampler as a Feynman-Kac model (module docstring) and its
    :class:`~probkit.smc.MoveTarget` (the position ``x`` of a :class:`TDSParticle`)."""
    shape = likelihood.x_shape
    dtype = jnp.result_type(float)
    var0 = float(process.prior_scale()) ** 2
    if likelihood.kind == "gaussian" and likelihood.operator.has_gram:  # N(y; A x0, s² + c r_t² AAᵀ)
        twist_of_x0 = gaussian_path(likelihood, process, c=twist_c).denoised_loglikelihood_fn
    else:
        twist_of_x0 = lambda x0, t: likelihood.log_prob(x0)  # noqa: E731

    def evaluate(x, t):
        x0, pullback, s = _denoiser_vjp(process, score_fn, x, t)
        log_tw, g_x0 = jax.value_and_grad(twist_of_x0)(x0, t)
        (g_x,) = pullback(g_x0)
        return s, g_x, log_tw

    def init(key):
        x = math.sqrt(var0) * jax.random.normal(key, shape, dtype)
        s, g, lt = evaluate(x, jnp.asarray(t_start, dtype))
        return TDSParticle(x, s, g, lt)

    def _means(p, t, h):  # the reverse SDE's Euler-Maruyama kernel with the prior / twisted score
        b, c, std = euler_maruyama_kernel(process, p.x, t, h)
        return b + c * p.score, b + c * (p.score + p.grad_twist), std**2

    def transition(key, t, t_next, p):
        h = t - t_next
        _, mean_q, var = _means(p, t, h)
        x_new = mean_q + jnp.sqrt(var) * jax.random.normal(key, p.x.shape, p.x.dtype)
        s, g, lt = evaluate(x_new, t_next)
        lt = jnp.where(t_next <= t_end, likelihood.log_prob(x_new), lt)  # exact likelihood at the end
        return TDSParticle(x_new.astype(dtype), s, g, lt)

    def log_potential(t, t_next, prev, new):
        mean_p, mean_q, var = _means(prev, t, t - t_next)
        log_ratio = -0.5 * (jnp.sum((new.x - mean_p) ** 2) - jnp.sum((new.x - mean_q) ** 2)) / var
        return log_ratio + new.log_twist - prev.log_twist

    def init_log_weight(p):
        lw = p.log_twist
        if logdensity_fn is not None:
            lw = lw + logdensity_fn(p.x, jnp.asarray(t_start, dtype)) - process.prior_log_prob(p.x)
        return lw

    return FeynmanKacModel(init, transition, log_potential, init_log_weight), MoveTarget(position=lambda p: p.x)


def twisted_smc(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    likelihood: Likelihood,
    num_particles: int,
    num_steps: int,
    *,
    twist_c: float = 1.0,
    vjp_cost: int = 2,
    grid: str = "uniform",
    t_min: float | None = None,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    **options,
) -> WeightedParticles:
    """Twisted diffusion sampler (Wu et al. 2023, arXiv 2306.17775) on the Feynman-Kac engine.

    ``twist_c``: variance inflation c of the Gaussian twist (0: l(x̂_0(x))). ``logdensity_fn``:
    optional exact noised prior log density for exact initial weights. NFE per step
    1 + ``vjp_cost`` (plus the same once at the start). Other arguments (``**options``: the
    engine's, :class:`probkit.smc.SMCConfig`) as in :func:`probkit.inverse.ensemble`.
    """
    ts, vjp_cost = _common_checks(process, score_fn, likelihood, num_steps, vjp_cost, grid, t_min)
    twist_c = _checks.scalar("twist_c", twist_c, low=0.0)
    config = make_config(num_particles, ts, False, **options)
    out, flags = _tds_run(key, process, score_fn, likelihood, twist_c, logdensity_fn, int(num_particles), ts, config,
                          1 + vjp_cost)
    return finish(out, flags)


@filter_jit
def _tds_run(key, process, score_fn, likelihood, twist_c, logdensity_fn, num_particles, ts, config, nfe):
    with jax.ensure_compile_time_eval():
        model, target = tds_model(process, score_fn, likelihood, ts[-1], twist_c=twist_c, logdensity_fn=logdensity_fn)
    return run_model(key, model, num_particles, ts, config, nfe_per_step=nfe, nfe_init=nfe, target=target)
