"""Denoising Langevin Gibbs (DLG) and the denoising pass.

Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based Generative Models" (ICML;
arXiv 2209.14593). DLG runs MCMC on the joint of data and noise level

    pi(x, t) ∝ p_t(x) pi(t),   t in [t_min, t_max],                         (1)

whose t-marginal is pi(t) (since ∫ p_t(x) dx = 1) and whose x | t conditional is the noised
data law p_t. Gibbs sweeps alternate

* **t | x** — on a grid of noise levels (:mod:`probkit.dmcmc.noise_level`): the exact
  categorical ``P(t_j | x) ∝ p_{t_j}(x) w_j`` when ``log p_t`` is available (mixtures, user
  targets), otherwise a learned noise-level classifier ``q(t_j | x)`` (approximate; see there);
* **x | t** — ``num_x_steps`` moves of a BlackJAX kernel on ``log p_t(·)`` at the current t:
  ``mala`` (``blackjax.mala``, default when ``log p_t`` exists), ``hmc`` (``blackjax.hmc``) or
  ``ula``: unadjusted Langevin ``x' = x + h s(x, t) + sqrt(2h) z`` with the score only. BlackJAX
  has no kernel named ULA; its SGLD kernel (``blackjax.sgld``) with the exact score as the
  "gradient estimator" and temperature 1 *is* this update, so that kernel runs it. ULA is biased
  at O(h) (no accept/reject); the result's ``x_move`` field says which move ran.

With the exact t-move and MALA/HMC the chain is an exact Gibbs sampler of the discretised joint.
Every kept ``(x, t)`` is then *denoised*: integrated from its own ``t`` to ``denoise_to`` (default
``process.t_min``) by any probkit integrator on a per-particle grid. Since ``x ~ p_t`` is carried
to ``p_0`` by the reverse dynamics for every ``t``, the denoised draws target the data law, and
because the chain stays at moderate noise levels the integration is short.

**Cost accounting.** An NFE is one evaluation of the score model (for MALA/HMC: one
``value_and_grad`` of ``log p_t``). Per Gibbs sweep: ``ula`` costs ``num_x_steps``; ``mala``
``num_x_steps + 1`` (the kernel is re-initialised at the new t, one ``value_and_grad``);
``hmc`` ``num_x_steps * num_integration_steps + 1``. All sweeps, burn-in included, are amortised
over the kept samples of a chain: ``nfe_mcmc = (burn_in + num_samples * thin) * cost /
num_samples``; ``nfe = nfe_mcmc + denoise_steps * nfe_per_step(integrator)``. The t-moves are
counted apart, in ``t_evals``: ``G`` evaluations of ``log p_t`` (no gradient) per sweep for the
exact move, one classifier call for the learned one.

Step sizes: ``step_size`` is relative to the noise level when ``scale_step=True`` (default):
Langevin step ``h(t) = step_size * sigma_t^2`` for ``mala``/``ula``, leapfrog step
``eps(t) = step_size * sigma_t`` for ``hmc`` (p_t has variance >= sigma_t^2 in every direction, so
this keeps acceptance roughly constant across t). A callable ``t -> step`` is used as is.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from probkit.progress import progress_scan
from probkit.diffusion.integrators import INTEGRATORS, integrate, make_integrator
from probkit import _checks
from probkit._results import EqualWeights
from probkit.smc import correctors
from probkit.diffusion.schedules import GRIDS, Process, time_grid
from probkit.diffusion.sde import check_score_output, output_shape
from probkit.dmcmc.noise_level import (
    NoiseLevelEstimator,
    make_t_grid,
    noise_level_log_probs,
    t_conditional_log_probs,
)

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
LogProbFn = Callable[[Array, Array], Array]

__all__ = [
    "X_MOVES",
    "DLGState",
    "DLGInfo",
    "DLGKernel",
    "DLGResult",
    "DLGDiagnostics",
    "build_kernel",
    "denoise_samples",
    "dlg",
    "diagnostics",
    "to_inference_data",
]

X_MOVES = ("mala", "hmc", "ula")


class DLGState(NamedTuple):
    """State of ONE chain: position ``x``, grid index ``t_index`` and noise level ``t``."""

    x: Array
    t_index: Array
    t: Array


class DLGInfo(NamedTuple):
    """Per-sweep information: mean acceptance of the x-move (1 for ``ula``) and the new t."""

    acceptance_rate: Array
    t: Array


class DLGKernel(NamedTuple):
    """A DLG kernel: ``init(x, t) -> DLGState``, ``step(key, state) -> (DLGState, DLGInfo)``.

    ``nfe_per_step``: score-model evaluations per sweep; ``t_evals_per_step``: evaluations of
    ``log p_t`` (exact move) or of the classifier (learned move) per sweep.
    """

    init: Callable[[Array, Any], DLGState]
    step: Callable[[Array, DLGState], tuple[DLGState, DLGInfo]]
    grid: Array
    log_weights: Array
    nfe_per_step: int
    t_evals_per_step: int
    x_move: str
    t_move: str


def _step_fn(process: Process, step_size, scale_step: bool, power: float) -> Callable[[Array], Array]:
    if callable(step_size):
        return lambda t: jnp.asarray(step_size(t))
    if scale_step:
        return lambda t: step_size * process.sigma(t) ** power
    return lambda t: jnp.asarray(step_size)


def build_kernel(
    process: Process,
    score_fn: ScoreFn,
    grid: Array,
    log_weights: Array,
    *,
    log_prob_fn: LogProbFn | None = None,
    noise_estimator: NoiseLevelEstimator | None = None,
    x_move: str = "mala",
    step_size: float | Callable[[Array], Array] = 0.5,
    scale_step: bool = True,
    num_x_steps: int = 1,
    num_integration_steps: int = 5,
) -> DLGKernel:
    """Build the DLG Gibbs kernel for ONE chain (vmap it over chains).

    The t-move is exact (``log_prob_fn`` given and ``noise_estimator`` None) or learned
    (``noise_estimator``). ``grid``/``log_weights`` come from :func:`~probkit.dmcmc.make_t_grid`.
    No validation here beyond the choice of moves: :func:`dlg` validates its arguments.
    """
    _checks.choice("x_move", x_move, X_MOVES)
    if x_move in ("mala", "hmc") and log_prob_fn is None:
        raise ValueError(f"`x_move={x_move!r}` needs `log_prob_fn` (log p_t); use x_move='ula' for score-only models")
    if noise_estimator is None and log_prob_fn is None:
        raise ValueError("the t-move needs `log_prob_fn` (exact) or `noise_estimator` (learned)")

    if noise_estimator is not None:
        t_move = "learned"
        t_log_probs = lambda x: noise_level_log_probs(noise_estimator, x)  # noqa: E731
        t_evals = 1
    else:
        t_move = "exact"
        t_log_probs = lambda x: t_conditional_log_probs(log_prob_fn, x, grid, log_weights)  # noqa: E731
        t_evals = int(grid.shape[0])

    # the x-move: one of probkit.smc.correctors' BlackJAX presets on log p_t (score for ULA)
    if x_move == "hmc":
        move = correctors.hmc(_step_fn(process, step_size, scale_step, 1.0), num_integration_steps, num_x_steps)
    else:
        preset = correctors.mala if x_move == "mala" else correctors.langevin
        move = preset(_step_fn(process, step_size, scale_step, 2.0), num_x_steps)
    move_x = move.make(correctors.MoveTarget(log_prob_fn, score_fn))
    nfe = move.nfe

    def init(x: Array, t: ArrayLike | None = None) -> DLGState:
        t = grid[-1] if t is None else jnp.asarray(t, grid.dtype)
        j = jnp.argmin(jnp.abs(grid - t)).astype(jnp.int32)
        return DLGState(jnp.asarray(x), j, grid[j])

    def step(key: Array, state: DLGState) -> tuple[DLGState, DLGInfo]:
        k_t, k_x = jax.random.split(key)
        j = jax.random.categorical(k_t, t_log_probs(state.x)).astype(jnp.int32)
        t = grid[j]
        x, acc = move_x(k_x, state.x, t)
        return DLGState(x, j, t), DLGInfo(acc, t)

    return DLGKernel(init, step, grid, log_weights, nfe, t_evals, x_move, t_move)


# --------------------------------------------------------------------------------------------
# the denoising pass
def denoise_samples(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    x: Array,
    t: Array,
    *,
    integrator: str = "dpm_solver_2m",
    num_steps: int = 10,
    grid: str = "log_snr",
    t_end: float | None = None,
    eta_ddim: float = 0.0,
) -> Array:
    """Integrate each particle ``x[i]`` from its own time ``t[i]`` to ``t_end`` (jittable).

    ``x``: ``(n, *event_shape)``, ``t``: ``(n,)`` with every ``t[i] > t_end``.
    """
    integ = make_integrator(integrator, process, score_fn, eta_ddim=eta_ddim)
    keys = jax.random.split(key, x.shape[0])

    def one(k, xi, ti):
        return integrate(k, integ, xi, time_grid(process, num_steps, grid, t_min=t_end, t_max=ti))

    return jax.vmap(one)(keys, x, t)


# --------------------------------------------------------------------------------------------
# the convenience function
@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["samples", "x", "t", "t_trace", "acceptance", "acceptance_rate", "grid", "grid_log_weights"],
    meta_fields=["nfe", "nfe_mcmc", "nfe_denoise", "t_evals", "x_move", "t_move"],
)
@dataclasses.dataclass(frozen=True)
class DLGResult(EqualWeights):
    """Output of :func:`dlg`.

    Attributes:
      samples: denoised draws ``(num_chains * num_samples, *shape)`` (chain-major order).
      x: kept chain positions ``(num_chains, num_samples, *shape)`` (noisy, before denoising).
      t: kept noise levels ``(num_chains, num_samples)``.
      t_trace: noise level after every sweep, burn-in included, ``(num_chains, burn_in + num_samples * thin)``.
      acceptance: x-move acceptance of the sweeps that produced the kept draws ``(num_chains, num_samples)``.
      acceptance_rate: mean acceptance over all post-burn-in sweeps (1.0 for ``ula``; a 0-d array).
      nfe: score-model evaluations per returned sample, ``nfe_mcmc + nfe_denoise``.
      nfe_mcmc: x-move evaluations per kept sample (burn-in and thinning amortised).
      nfe_denoise: evaluations of the denoising pass per sample.
      t_evals: t-move evaluations per kept sample (``log p_t`` calls, or classifier calls).
      x_move: ``"mala"``, ``"hmc"`` or ``"ula"``.
      t_move: ``"exact"`` (grid conditional from ``log p_t``) or ``"learned"`` (classifier).
      grid: the noise-level grid ``(G,)``; grid_log_weights: its normalised prior masses
        (``log_weights`` is the results core's: uniform weights of the ``samples``).
    """

    samples: Array
    x: Array
    t: Array
    t_trace: Array
    acceptance: Array
    acceptance_rate: Array
    nfe: float
    nfe_mcmc: float
    nfe_denoise: int
    t_evals: float
    x_move: str
    t_move: str
    grid: Array
    grid_log_weights: Array

    def __repr__(self) -> str:
        return (f"DLGResult(samples={tuple(jnp.shape(self.samples))}, chains x draws={tuple(jnp.shape(self.t))}, "
                f"nfe={self.nfe:.4g}, x_move={self.x_move!r}, t_move={self.t_move!r})")

    def to_inference_data(self, max_coords: int = 16):
        """ArviZ InferenceData of the kept chains (``t`` and ``x``) for R-hat / ESS (see
        :func:`to_inference_data`). ``particles`` / ``log_weights`` / ``resample`` view the
        denoised ``samples`` as equally weighted particles."""
        return to_inference_data(self, max_coords)


def dlg(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    *,
    log_prob_fn: LogProbFn | None = None,
    noise_estimator: NoiseLevelEstimator | None = None,
    num_chains: int = 64,
    num_samples: int = 16,
    burn_in: int = 100,
    thin: int = 1,
    step_size: float | Callable[[Array], Array] = 0.5,
    scale_step: bool = True,
    t_min: float = 0.02,
    t_max: float = 0.5,
    log_prior_t: Callable[[Array], Array] | None = None,
    num_t_grid: int = 128,
    x_move: str | None = None,
    num_x_steps: int = 1,
    num_integration_steps: int = 5,
    integrator: str = "dpm_solver_2m",
    denoise_steps: int = 10,
    denoise_grid_kind: str = "log_snr",
    denoise_to: float | None = None,
    eta_ddim: float = 0.0,
    x_init: ArrayLike | None = None,
    t_init: float | None = None,
    progress: bool = False,
    _prepare_only: bool = False,
) -> DLGResult:
    """Denoising Langevin Gibbs (Kim & Ye 2023, arXiv 2209.14593) then a denoising pass.

    Runs ``num_chains`` vmapped Gibbs chains on pi(x, t) ∝ p_t(x) pi(t) (module docstring), keeps
    every ``thin``-th sweep after ``burn_in`` sweeps (``num_samples`` per chain), and integrates
    each kept ``(x, t)`` from t to ``denoise_to`` with ``integrator`` in ``denoise_steps`` steps.

    Args:
      key: PRNG key.
      process: forward process (``probkit.diffusion.VP`` etc.).
      score_fn: ``score_fn(x, t)`` for ONE particle.
      shape: event shape of one particle.
      log_prob_fn: ``log p_t(x)`` for ONE particle (e.g. ``GaussianMixture.log_prob_fn``);
        enables the exact t-move and the Metropolis-adjusted x-moves.
      noise_estimator: a trained :class:`~probkit.dmcmc.NoiseLevelEstimator` (learned t-move;
        used whenever given). Its grid replaces ``t_min``, ``t_max``, ``num_t_grid``, ``log_prior_t``.
      num_chains, num_samples, burn_in, thin: chains, kept draws per chain, discarded sweeps,
        sweeps between kept draws.
      step_size, scale_step: x-move step (module docstring).
      t_min, t_max, log_prior_t, num_t_grid: the noise-level range, prior and grid size.
      x_move: ``"mala"``, ``"hmc"`` or ``"ula"``; default ``"mala"`` if ``log_prob_fn`` else ``"ula"``.
      num_x_steps: x-moves per Gibbs sweep; num_integration_steps: leapfrog steps of ``hmc``.
      integrator, denoise_steps, denoise_grid_kind, denoise_to, eta_ddim: the denoising pass
        (any of ``probkit.diffusion.INTEGRATORS``).
      x_init: initial positions ``(num_chains, *shape)``; default ``process.prior_sample``.
      t_init: initial noise level (nearest grid node); default ``t_max``.
      progress: show progress bars over the burn-in and kept sweeps (silent under ``jax.vmap``;
        :func:`probkit.progress.progress_scan`).

    Returns:
      :class:`DLGResult`.

    Raises:
      ValueError: ``t_min >= t_max``, non-positive ``step_size``, zero chains, a missing
        ``log_prob_fn`` for ``mala``/``hmc``, and other invalid arguments (the message names it).
    """
    shape = tuple(int(s) for s in shape)
    _checks.prng_key(key)
    num_chains = _checks.positive_int("num_chains", num_chains, 1)
    num_samples = _checks.positive_int("num_samples", num_samples, 1)
    burn_in = _checks.positive_int("burn_in", burn_in, 0)
    thin = _checks.positive_int("thin", thin, 1)
    num_x_steps = _checks.positive_int("num_x_steps", num_x_steps, 1)
    num_integration_steps = _checks.positive_int("num_integration_steps", num_integration_steps, 1)
    denoise_steps = _checks.positive_int("denoise_steps", denoise_steps, 1)
    _checks.step_size(step_size)
    _checks.choice("integrator", integrator, INTEGRATORS)
    _checks.choice("denoise_grid_kind", denoise_grid_kind, GRIDS)
    if x_move is None:
        x_move = "mala" if log_prob_fn is not None else "ula"
    if noise_estimator is not None:
        if not isinstance(noise_estimator, NoiseLevelEstimator):
            raise ValueError(f"`noise_estimator` must be a NoiseLevelEstimator, got {type(noise_estimator).__name__}")
        if tuple(noise_estimator.event_shape) != shape:
            raise ValueError(f"`noise_estimator` was trained on event shape {noise_estimator.event_shape}, got shape {shape}")
        grid, log_w = noise_estimator.grid, noise_estimator.log_weights
        t_min, t_max = noise_estimator.t_min, noise_estimator.t_max
    else:
        grid, log_w = make_t_grid(t_min, t_max, num_t_grid, log_prior_t)
    t_end = float(process.t_min if denoise_to is None else denoise_to)
    if not 0.0 <= t_end < t_min:
        raise ValueError(f"`denoise_to` ({t_end}) must lie in [0, t_min) with t_min={t_min}")
    if t_init is not None and not (isinstance(t_init, (int, float)) and t_min <= t_init <= t_max):
        raise ValueError(f"`t_init` must lie in [t_min, t_max] = [{t_min}, {t_max}], got {t_init!r}")
    build_kernel(process, score_fn, grid, log_w, log_prob_fn=log_prob_fn, noise_estimator=noise_estimator,
                 x_move=x_move)  # checks the choice of moves (builds closures only)
    key_init, key_run, key_denoise = jax.random.split(key, 3)
    if x_init is None:
        x_init = process.prior_sample(key_init, (num_chains, *shape))
    else:
        x_init = jnp.asarray(x_init, jnp.result_type(float))
        if x_init.shape != (num_chains, *shape):
            raise ValueError(f"`x_init` must have shape {(num_chains, *shape)}, got {x_init.shape}")
        if not _checks.is_traced(x_init) and not bool(jnp.all(jnp.isfinite(x_init))):
            raise ValueError("`x_init` must be finite")
    check_score_output(score_fn, x_init[0])
    if log_prob_fn is not None:
        out = output_shape(log_prob_fn, x_init[0], jnp.asarray(0.5, x_init.dtype))
        if out != ():
            raise ValueError(f"`log_prob_fn` must return a scalar for ONE particle, got shape {out}")

    kernel_options = dict(log_prob_fn=log_prob_fn, noise_estimator=noise_estimator, x_move=x_move,
                          step_size=step_size if callable(step_size) else jnp.asarray(step_size, jnp.result_type(float)),
                          scale_step=bool(scale_step), num_x_steps=num_x_steps, num_integration_steps=num_integration_steps)
    denoise_options = dict(integrator=integrator, num_steps=denoise_steps, grid=denoise_grid_kind, t_end=t_end,
                           eta_ddim=float(eta_ddim))
    if _prepare_only:  # the validated program, for probkit.dmcmc.checkpoint
        return (key_run, key_denoise, x_init, process, score_fn, grid, log_w, t_init, kernel_options,
                (num_chains, num_samples, burn_in, thin), denoise_options, x_move)
    out, flags = _dlg_run(key_run, key_denoise, x_init, process, score_fn, grid, log_w, t_init, kernel_options,
                          (num_chains, num_samples, burn_in, thin), denoise_options, bool(progress))
    _check_flags(flags, x_move, burn_in, thin)
    _check_acceptance(out, x_move)
    return out


def _check_acceptance(out: DLGResult, x_move: str) -> None:
    if x_move != "ula" and not _checks.is_traced(out.acceptance_rate) and float(out.acceptance_rate) == 0.0:
        raise ValueError(
            f"the {x_move!r} x-move accepted no proposal in any chain (acceptance 0.0): the chains never moved "
            "and the samples are their start values denoised; `step_size` is far too large (or `log_prob_fn` "
            "is NaN/inf), try step_size=0.5")


def _check_flags(flags: tuple[Array, Array], x_move: str, burn_in: int, thin: int) -> None:
    """After the run (concrete flags only): raise ValueError for the first Gibbs sweep whose
    chain state went non-finite, or for non-finite samples out of the denoising pass."""
    if _checks.is_traced(flags):
        return
    chain_bad, denoise_bad = (np.asarray(f) for f in flags)
    if chain_bad.any():
        sweep = int(np.flatnonzero(chain_bad.any(axis=0))[0])
        chain = int(np.flatnonzero(chain_bad[:, sweep])[0])
        phase = "burn-in" if sweep < burn_in else "sampling"
        raise ValueError(
            f"non-finite chain state at Gibbs sweep {sweep} ({phase}; chain {chain}) in the {x_move!r} x-move: "
            "check `score_fn` / `log_prob_fn` (NaN/inf values) and `step_size` (too large a step diverges)")
    if denoise_bad.any():
        i = int(np.flatnonzero(denoise_bad)[0])
        raise ValueError(
            f"non-finite samples out of the denoising pass (sample {i}, {int(denoise_bad.sum())} in all) while the "
            "chains stayed finite: check `score_fn` between `denoise_to` and `t_min` (NaN/inf values), `step_size` "
            "(chain states far out of range) or the denoising settings (`integrator`, `denoise_steps`)")


@eqx.filter_jit
def _dlg_run(key_run, key_denoise, x_init, process, score_fn, grid, log_w, t_init, kernel_options, sizes,
             denoise_options, progress=False) -> tuple[DLGResult, tuple[Array, Array]]:
    num_chains, num_samples, burn_in, thin = sizes
    kernel = build_kernel(process, score_fn, grid, log_w, **kernel_options)

    # The chains are stepped together (a vmap inside each sweep, the scans outside it), with the
    # per-chain keys of a chain-by-chain run, so the opt-in progress bar reports once per sweep.
    step = jax.vmap(kernel.step)

    def sweep(state, keys):
        state, info = step(keys, state)
        # flagged inside the scan (no host sync): a chain state went NaN/inf in this sweep
        finite = jnp.all(jnp.isfinite(state.x), axis=tuple(range(1, state.x.ndim))) & jnp.isfinite(state.t)
        return state, (info, ~finite)

    chain_keys = jax.vmap(jax.random.split)(jax.random.split(key_run, num_chains))  # (C, 2, key)
    burn_keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, burn_in))(chain_keys[:, 0]), 0, 1)
    keep_keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, num_samples))(chain_keys[:, 1]), 0, 1)
    state0 = jax.vmap(kernel.init, in_axes=(0, None))(x_init, t_init)
    state, (burn_info, burn_bad) = progress_scan(sweep, state0, burn_keys, enabled=progress, desc="dlg burn-in")

    def keep(state, keys):
        thin_keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, thin))(keys), 0, 1)
        state, (info, bad) = jax.lax.scan(sweep, state, thin_keys)
        return state, (state.x, state.t, info, bad)

    _, (xs, ts, info, bad) = progress_scan(keep, state, keep_keys, enabled=progress, desc="dlg")
    # scan axes first -> chain axis first: (S, C, ...) -> (C, S, ...); (S, thin, C) -> (C, S * thin)
    xs, ts = jnp.swapaxes(xs, 0, 1), jnp.swapaxes(ts, 0, 1)
    per_chain = lambda a: jnp.moveaxis(a, 2, 0).reshape(num_chains, -1)
    t_trace = jnp.concatenate([burn_info.t.T, per_chain(info.t)], axis=1)
    chain_bad = jnp.concatenate([burn_bad.T, per_chain(bad)], axis=1)
    acc = info.acceptance_rate[:, -1].T
    acc_all = jnp.mean(info.acceptance_rate, axis=(0, 1))
    out, denoise_bad = _assemble(key_denoise, process, score_fn, kernel, xs, ts, t_trace, acc, acc_all, grid, log_w,
                                 sizes, denoise_options)
    return out, (chain_bad, denoise_bad)


def _assemble(key_denoise, process, score_fn, kernel, xs, ts, t_trace, acc, acc_all, grid, log_w, sizes,
              denoise_options) -> tuple[DLGResult, Array]:
    """The denoising pass over the kept draws ``xs`` ``(C, S, *shape)`` at ``ts`` and the result."""
    num_chains, num_samples, burn_in, thin = sizes
    flat_x = xs.reshape(num_chains * num_samples, *xs.shape[2:])
    samples = denoise_samples(key_denoise, process, score_fn, flat_x, ts.reshape(-1), **denoise_options)
    sweeps = burn_in + num_samples * thin
    nfe_mcmc = sweeps * kernel.nfe_per_step / num_samples
    integ = make_integrator(denoise_options["integrator"], process, score_fn, eta_ddim=denoise_options["eta_ddim"])
    nfe_denoise = denoise_options["num_steps"] * integ.nfe_per_step
    denoise_bad = ~jnp.all(jnp.isfinite(samples.reshape(samples.shape[0], -1)), axis=1)
    return DLGResult(
        samples=samples, x=xs, t=ts, t_trace=t_trace, acceptance=acc, acceptance_rate=jnp.mean(acc_all),
        nfe=nfe_mcmc + nfe_denoise, nfe_mcmc=nfe_mcmc, nfe_denoise=nfe_denoise,
        t_evals=sweeps * kernel.t_evals_per_step / num_samples, x_move=kernel.x_move, t_move=kernel.t_move,
        grid=grid, grid_log_weights=log_w,
    ), denoise_bad


# --------------------------------------------------------------------------------------------
# diagnostics
def to_inference_data(result: DLGResult, max_coords: int = 16):
    """ArviZ InferenceData of the kept chains: ``t`` ``(chains, draws)`` and the first
    ``max_coords`` flattened coordinates of ``x`` (``(chains, draws, k)``), with the x-move
    acceptance in ``sample_stats``. Uses :func:`probkit.diagnostics.arviz.chains_to_inference_data`
    (ArviZ imported lazily)."""
    from probkit.diagnostics.arviz import chains_to_inference_data

    c, s = result.t.shape
    x = np.asarray(result.x).reshape(c, s, -1)[:, :, :max_coords]
    return chains_to_inference_data({"t": np.asarray(result.t), "x": x}, sample_stats={"acceptance": np.asarray(result.acceptance)})


class DLGDiagnostics(NamedTuple):
    """Split-R-hat and bulk ESS (ArviZ) of the noise level and of the x coordinates.

    ``rhat_x_max`` / ``ess_x_min`` are the worst values over the first ``max_coords`` coordinates.
    """

    rhat_t: float
    ess_t: float
    rhat_x_max: float
    ess_x_min: float


def diagnostics(result: DLGResult, max_coords: int = 16) -> DLGDiagnostics:
    """R-hat and ESS of a multi-chain :func:`dlg` run (needs >= 2 chains and >= 4 draws)."""
    import arviz as az

    c, s = result.t.shape
    if c < 2 or s < 4:
        raise ValueError(f"`result` needs >= 2 chains and >= 4 kept draws per chain for R-hat, got {c} x {s}")
    idata = to_inference_data(result, max_coords)
    rhat = az.rhat(idata)
    ess = az.ess(idata, method="bulk")
    return DLGDiagnostics(
        rhat_t=float(rhat["t"]), ess_t=float(ess["t"]),
        rhat_x_max=float(np.max(rhat["x"].values)), ess_x_min=float(np.min(ess["x"].values)),
    )
