"""Reverse-time integrators, each an ``init``/``step`` pair acting on ONE particle.

``make_integrator(method, process, score_fn)`` returns an :class:`Integrator` whose
``step(key, state, t, t_next)`` moves a particle from time t to t_next < t. The library vmaps
it over particles and drives it with ``jax.lax.scan`` (:func:`integrate`, :func:`sample`).

Methods (h = t - t_next > 0 is the step in generative time):

* ``euler_maruyama`` — reverse SDE, x' = x + h(-f + g^2 s) + g sqrt(h) z (1 NFE/step).
* ``ddpm`` — ancestral sampling from the Gaussian posterior q(x_t' | x_t, x0_hat) with the
  Tweedie estimate x0_hat (Ho et al. 2020, arXiv 2006.11239), for any alpha/sigma (1 NFE).
* ``ddim`` — Song, Meng & Ermon 2021 (arXiv 2010.02502): x' = alpha' x0_hat +
  sqrt(sigma'^2 - c^2) eps_hat + c z, c = eta_ddim * ddpm posterior std (eta_ddim = 0:
  deterministic; 1 NFE).
* ``heun`` — Heun's second-order method on the probability-flow ODE (Karras et al. 2022,
  arXiv 2206.00364; 2 NFE/step).
* ``dpm_solver_2m`` — DPM-Solver++(2M), the multistep second-order data-prediction solver
  in lambda = log(alpha/sigma) (Lu et al. 2022, arXiv 2211.01095; 1 NFE/step).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from probkit.progress import progress_scan
from probkit import _checks
from probkit._results import EqualWeights
from probkit.diffusion.schedules import Process, time_grid
from probkit.diffusion.sde import ancestral_kernel, check_score_output, denoise, euler_maruyama_step, reverse_drift
from probkit._jit import filter_jit

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

__all__ = ["INTEGRATORS", "Integrator", "IntegratorState", "SampleResult", "make_integrator", "integrate", "sample"]

INTEGRATORS = ("euler_maruyama", "ddpm", "ddim", "heun", "dpm_solver_2m")


class IntegratorState(NamedTuple):
    """State of one particle: its position and the method's memory (``aux``)."""

    x: Array
    aux: Any = ()


class Integrator(NamedTuple):
    """An integrator: ``init(x) -> state``, ``step(key, state, t, t_next) -> state``; ``order``:
    its convergence order in the step (strong order for the SDE, 0.5)."""

    init: Callable[[Array], IntegratorState]
    step: Callable[[Array, IntegratorState, Array, Array], IntegratorState]
    nfe_per_step: int
    order: float


@functools.partial(jax.tree_util.register_dataclass, data_fields=["samples", "times"], meta_fields=["nfe"])
@dataclasses.dataclass(frozen=True)
class SampleResult(EqualWeights):
    """Output of :func:`sample` (a pytree): final samples, score evaluations per sample, the grid;
    ``particles`` / ``log_weights`` / ``resample`` / ``to_inference_data`` view the samples as
    equally weighted particles."""

    samples: Array
    nfe: int
    times: Array

    def __repr__(self) -> str:
        return f"SampleResult(samples={tuple(jnp.shape(self.samples))}, nfe={self.nfe})"


def _init_plain(x: Array) -> IntegratorState:
    return IntegratorState(x, ())


def _euler_maruyama(process: Process, score_fn: ScoreFn, eta_ddim: float) -> Integrator:
    def step(key, state, t, t_next):
        z = jax.random.normal(key, state.x.shape, state.x.dtype)
        return IntegratorState(euler_maruyama_step(process, state.x, score_fn(state.x, t), t, t - t_next, z), ())

    return Integrator(_init_plain, step, 1, 0.5)


def _ancestral(eta_c: float | None, process: Process, score_fn: ScoreFn, eta_ddim: float) -> Integrator:
    eta = eta_ddim if eta_c is None else eta_c  # DDPM: eta_c = 1; DDIM: eta_ddim

    def step(key, state, t, t_next):
        b, c, std = ancestral_kernel(process, state.x, t, t_next, eta)
        z = jax.random.normal(key, state.x.shape, state.x.dtype)
        return IntegratorState(b + c * score_fn(state.x, t) + std * z, ())

    return Integrator(_init_plain, step, 1, 1.0)


def _heun(process: Process, score_fn: ScoreFn, eta_ddim: float) -> Integrator:
    def step(key, state, t, t_next):
        h, x = t - t_next, state.x
        d1 = reverse_drift(process, score_fn, x, t, 0.0)
        d2 = reverse_drift(process, score_fn, x + h * d1, t_next, 0.0)
        return IntegratorState(x + 0.5 * h * (d1 + d2), ())

    return Integrator(_init_plain, step, 2, 2.0)


def _dpm_solver_2m(process: Process, score_fn: ScoreFn, eta_ddim: float) -> Integrator:
    def init(x):
        # aux = (previous data prediction, previous step in lambda, number of steps taken)
        return IntegratorState(x, (jnp.zeros_like(x), jnp.zeros((), x.dtype), jnp.zeros((), jnp.int32)))

    def step(key, state, t, t_next):
        x = state.x
        d_prev, h_prev, n = state.aux
        x0 = denoise(process, x, score_fn(x, t), t)
        h = 0.5 * (process.log_snr(t_next) - process.log_snr(t))
        r = h_prev / h
        d = jnp.where(n > 0, (1.0 + 0.5 / r) * x0 - (0.5 / r) * d_prev, x0)
        x_new = (process.sigma(t_next) / process.sigma(t)) * x - process.alpha(t_next) * jnp.expm1(-h) * d
        return IntegratorState(x_new, (x0, h.astype(x.dtype), n + 1))

    return Integrator(init, step, 1, 2.0)


_REGISTRY = {"euler_maruyama": _euler_maruyama, "ddpm": functools.partial(_ancestral, 1.0),
             "ddim": functools.partial(_ancestral, None), "heun": _heun, "dpm_solver_2m": _dpm_solver_2m}


def make_integrator(method: str, process: Process, score_fn: ScoreFn, *, eta_ddim: float = 0.0) -> Integrator:
    """Build the named integrator for ``process`` driven by ``score_fn`` (one particle)."""
    if method not in _REGISTRY:
        raise ValueError(f"`method` must be one of {INTEGRATORS}, got {method!r}")
    if method == "ddim" and not 0.0 <= eta_ddim <= 1.0:
        raise ValueError(f"`eta_ddim` must lie in [0, 1], got {eta_ddim}")
    return _REGISTRY[method](process, score_fn, eta_ddim)


def integrate(key: Array, integrator: Integrator, x: Array, ts: Array) -> Array:
    """Integrate ONE particle along the decreasing grid ``ts`` with ``jax.lax.scan``.

    vmap it over particles (``ts`` may be batched too, e.g. per-particle start times).
    """
    keys = jax.random.split(key, ts.shape[0] - 1)

    def body(state, inp):
        k, t, t_next = inp
        return integrator.step(k, state, t, t_next), None

    state, _ = jax.lax.scan(body, integrator.init(x), (keys, ts[:-1], ts[1:]))
    return state.x


def sample(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    num_samples: int,
    num_steps: int,
    method: str = "euler_maruyama",
    *,
    grid: str = "uniform",
    t_min: float | None = None,
    t_start: float = 1.0,
    x_init: ArrayLike | None = None,
    eta_ddim: float = 0.0,
    progress: bool = False,
) -> SampleResult:
    """Draw ``num_samples`` samples of event ``shape`` by integrating the reverse dynamics.

    Starts from ``x_init`` (shape ``(num_samples, *shape)``) or from ``process.prior_sample``
    at ``t_start`` and integrates to ``t_min`` on ``time_grid(process, num_steps, grid)``.
    ``progress=True`` shows a progress bar over the steps (silent under ``jax.vmap``;
    :func:`probkit.progress.progress_scan`).
    Returns :class:`SampleResult` with ``nfe`` = score evaluations per sample.
    """
    _checks.prng_key(key)
    num_samples = _checks.positive_int("num_samples", num_samples)
    num_steps = _checks.positive_int("num_steps", num_steps)
    _checks.choice("method", method, INTEGRATORS)
    shape = _checks.shape("shape", shape)
    ts = time_grid(process, num_steps, grid, t_min=t_min, t_max=t_start)
    key_init, key_run = jax.random.split(key)
    if x_init is None:
        x_init = process.prior_sample(key_init, (num_samples, *shape))
    else:
        x_init = jnp.asarray(x_init)
        if x_init.shape != (num_samples, *shape):
            raise ValueError(f"`x_init` must have shape {(num_samples, *shape)}, got {x_init.shape}")
    check_score_output(score_fn, x_init[0])
    out, bad = _sample_run(key_run, x_init, ts, process, score_fn, method, float(eta_ddim), bool(progress))
    if not _checks.is_traced(bad, ts) and np.any(np.asarray(bad)):  # the first step flagged non-finite
        k, t = int(np.flatnonzero(np.asarray(bad))[0]), np.asarray(ts)
        raise ValueError(f"non-finite samples at step {k} (t = {t[k]:.6g} -> {t[k + 1]:.6g}): "
                         "check `score_fn` (or the step sizes / `x_init`)")
    return out


@filter_jit
def _sample_run(key, x_init, ts, process, score_fn, method, eta_ddim, progress=False) -> tuple[SampleResult, Array]:
    integrator = make_integrator(method, process, score_fn, eta_ddim=eta_ddim)
    num_steps = ts.shape[0] - 1
    # the keys of :func:`integrate` for each particle, stepped over the grid outside the particle
    # vmap so that the (opt-in) progress bar reports once per step
    step_keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, num_steps))(jax.random.split(key, x_init.shape[0])),
                             0, 1)
    step = jax.vmap(integrator.step, in_axes=(0, 0, None, None))

    def body(state, inp):
        keys, t, t_next = inp
        new = step(keys, state, t, t_next)
        return new, ~jnp.all(jnp.isfinite(new.x), axis=tuple(range(1, new.x.ndim)))

    state, bad = progress_scan(body, jax.vmap(integrator.init)(x_init), (step_keys, ts[:-1], ts[1:]),
                               enabled=progress, desc="sample")
    samples = state.x
    # a step is at fault when some sample first became non-finite there (x_init checked as step 0's input)
    bad = jnp.any(bad, axis=1) | (jnp.arange(bad.shape[0]) == 0) & ~jnp.all(jnp.isfinite(x_init))
    return SampleResult(samples, integrator.nfe_per_step * (ts.shape[0] - 1), ts), bad
