"""Denoising MCMC (Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based Generative
Models", ICML, arXiv 2209.14593): DLG chains, then a denoising pass.

:func:`dlg` runs ``num_chains`` chains of the Gibbs kernel (:mod:`probkit.dmcmc.kernel`) on
pi(x, t) ∝ p_t(x) pi(t), keeps every ``thin``-th sweep after ``burn_in`` sweeps and *denoises*
every kept ``(x, t)``: integrates it from its own t down to ``denoise.t_min`` (default
``process.t_min``) with any probkit integrator on a per-particle grid. Since ``x ~ p_t`` is
carried to ``p_0`` by the reverse dynamics for every t, the denoised draws target the data law,
and because the chains stay at moderate noise levels the integration is short.

**Cost accounting.** An NFE is one evaluation of the score model (for adjusted moves one
``value_and_grad`` of ``log p_t``). A sweep costs the x-move's ``Corrector.nfe``: ULA ``n``,
MALA ``n + 1`` (the kernel is re-initialised at the new t), HMC ``n L + 1``. All sweeps, burn-in
included, are amortised over the kept draws of a chain: ``nfe_mcmc = (burn_in + num_samples *
thin) * cost / num_samples``; ``nfe = nfe_mcmc + denoise.num_steps * nfe_per_step(integrator)``.
The t-moves are counted apart, in ``t_evals``: G evaluations of ``log p_t`` (no gradient) per
sweep for the exact move, one classifier call for the learned one.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from probkit import _checks
from probkit._results import EqualWeights
from probkit.diffusion.integrators import INTEGRATORS, integrate, make_integrator
from probkit.diffusion.schedules import GRIDS, Process, time_grid
from probkit.diffusion.sde import check_score_output, output_shape
from probkit.dmcmc.kernel import DLGKernel, build_kernel, noise_scaled_step
from probkit.dmcmc.noise_level import NoiseGrid, NoiseLevelEstimator
from probkit.progress import progress_scan
from probkit.smc import correctors
from probkit._jit import filter_jit

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

__all__ = ["Denoise", "DLGResult", "DLGDiagnostics", "denoise_samples", "dlg", "diagnostics"]


class Denoise(NamedTuple):
    """The denoising pass: ``num_steps`` steps of ``integrator`` (any of
    ``probkit.diffusion.INTEGRATORS``; ``eta_ddim`` for ``ddim``) on a time grid of kind ``grid``
    from each draw's t down to ``t_min`` (the grid's end; default ``process.t_min``)."""

    integrator: str = "dpm_solver_2m"
    num_steps: int = 10
    grid: str = "log_snr"
    t_min: float | None = None
    eta_ddim: float = 0.0


def denoise_samples(key: Array, process: Process, score_fn: ScoreFn, x: Array, t: Array,
                    denoise: Denoise = Denoise()) -> Array:
    """Integrate each particle ``x[i]`` ``(n, *event_shape)`` from its own time ``t[i]`` down to
    ``denoise.t_min`` (jittable; every ``t[i] > denoise.t_min``)."""
    integ = make_integrator(denoise.integrator, process, score_fn, eta_ddim=denoise.eta_ddim)
    t_min = process.t_min if denoise.t_min is None else denoise.t_min

    def one(k, xi, ti):
        return integrate(k, integ, xi, time_grid(process, denoise.num_steps, denoise.grid, t_min=t_min, t_max=ti))

    return jax.vmap(one)(jax.random.split(key, x.shape[0]), x, t)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["samples", "x", "t", "t_trace", "acceptance", "acceptance_rate", "grid", "grid_log_weights"],
    meta_fields=["nfe", "nfe_mcmc", "nfe_denoise", "t_evals", "x_move", "t_move"],
)
@dataclasses.dataclass(frozen=True)
class DLGResult(EqualWeights):
    """Output of :func:`dlg`. ``particles`` / ``log_weights`` / ``resample`` (the results core)
    view the denoised ``samples`` as equally weighted particles.

    Attributes:
      samples: denoised draws ``(num_chains * num_samples, *shape)`` (chain-major order).
      x: kept chain positions ``(num_chains, num_samples, *shape)`` (noisy, before denoising).
      t: kept noise levels ``(num_chains, num_samples)``.
      t_trace: noise level after every sweep, burn-in included, ``(num_chains, burn_in + num_samples * thin)``.
      acceptance: x-move acceptance of the sweeps that produced the kept draws ``(num_chains, num_samples)``.
      acceptance_rate: mean acceptance over all post-burn-in sweeps (1.0 for unadjusted moves; 0-d).
      nfe: score-model evaluations per returned sample, ``nfe_mcmc + nfe_denoise``.
      nfe_mcmc: x-move evaluations per kept sample (burn-in and thinning amortised).
      nfe_denoise: evaluations of the denoising pass per sample.
      t_evals: t-move evaluations per kept sample (``log p_t`` calls, or classifier calls).
      x_move: the corrector's name (``"mala"``, ``"hmc"``, ``"langevin"``, ...).
      t_move: ``"exact"`` (grid conditional from ``log p_t``) or ``"learned"`` (classifier).
      grid, grid_log_weights: the noise-level grid ``(G,)`` and its normalised log prior masses.
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
        """ArviZ InferenceData of the kept chains for R-hat / ESS: ``t`` ``(chains, draws)``, the
        first ``max_coords`` flattened coordinates of ``x`` and the x-move ``acceptance``
        (:func:`probkit.diagnostics.arviz.chains_to_inference_data`; ArviZ imported lazily)."""
        from probkit.diagnostics.arviz import chains_to_inference_data

        c, s = self.t.shape
        x = np.asarray(self.x).reshape(c, s, -1)[:, :, :max_coords]
        return chains_to_inference_data({"t": np.asarray(self.t), "x": x},
                                        sample_stats={"acceptance": np.asarray(self.acceptance)})


class _Program(NamedTuple):
    """A validated :func:`dlg` call (shared with :mod:`probkit.dmcmc.checkpoint`)."""

    key_run: Array
    key_denoise: Array
    x_init: Array
    process: Process
    score_fn: ScoreFn
    logdensity_fn: Any
    x_move: correctors.Corrector
    grid: Array
    log_weights: Array
    noise_estimator: NoiseLevelEstimator | None
    denoise: Denoise
    sizes: tuple[int, int, int, int]  # (num_chains, num_samples, burn_in, thin)

    def kernel(self) -> DLGKernel:
        return build_kernel(self.score_fn, self.x_move, self.grid, self.log_weights,
                            logdensity_fn=self.logdensity_fn, noise_estimator=self.noise_estimator)


def dlg(
    key: Array,
    process: Process,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    *,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    x_move: correctors.Corrector | None = None,
    t_move: NoiseGrid | NoiseLevelEstimator = NoiseGrid(),
    denoise: Denoise = Denoise(),
    num_chains: int = 64,
    num_samples: int = 16,
    burn_in: int = 100,
    thin: int = 1,
    x_init: ArrayLike | None = None,
    progress: bool = False,
) -> DLGResult:
    """Denoising Langevin Gibbs (Kim & Ye 2023, arXiv 2209.14593) then a denoising pass (module docstring).

    Args:
      key: PRNG key.
      process: forward process (``probkit.diffusion.VP`` etc.).
      score_fn: ``score_fn(x, t)`` for ONE particle.
      shape: event shape of one particle.
      logdensity_fn: ``log p_t(x)`` for ONE particle (e.g. ``GaussianMixture.logdensity_fn``);
        needed by the exact t-move and the Metropolis-adjusted x-moves.
      x_move: a :mod:`probkit.smc.correctors` move with absolute steps; default
        ``smc.mala(noise_scaled_step(process, 0.5))`` with ``logdensity_fn``, else
        ``smc.langevin(noise_scaled_step(process, 0.5))``.
      t_move: a :class:`NoiseGrid` (the exact t-move on its grid, from ``logdensity_fn``) or a
        trained :class:`NoiseLevelEstimator` (the learned t-move on the grid it was trained on).
      denoise: the denoising pass (:class:`Denoise`).
      num_chains, num_samples, burn_in, thin: chains, kept draws per chain, discarded sweeps,
        sweeps between kept draws.
      x_init: initial positions ``(num_chains, *shape)``; default ``process.prior_sample``.
      progress: progress bars over the burn-in and kept sweeps (silent under ``jax.vmap``).

    Returns:
      :class:`DLGResult`.

    Raises:
      ValueError: an invalid argument (the message names it); non-finite chain states or
        samples after the run (naming the sweep); an adjusted x-move that never accepted.
    """
    p = _prepare(key, process, score_fn, shape, logdensity_fn, x_move, t_move, denoise, num_chains, num_samples,
                 burn_in, thin, x_init)
    out, chain_bad, denoise_bad = _run(p, bool(progress))
    _check_flags(chain_bad, denoise_bad, out.x_move, burn_in, out)
    return out


def _prepare(key, process, score_fn, shape, logdensity_fn, x_move, t_move, denoise, num_chains, num_samples, burn_in,
             thin, x_init) -> _Program:
    _checks.prng_key(key)
    shape = _checks.shape("shape", shape)
    sizes = (_checks.positive_int("num_chains", num_chains), _checks.positive_int("num_samples", num_samples),
             _checks.positive_int("burn_in", burn_in, 0), _checks.positive_int("thin", thin))
    estimator = t_move if isinstance(t_move, NoiseLevelEstimator) else None
    if estimator is not None:
        if tuple(estimator.event_shape) != shape:
            raise ValueError(f"`t_move` (a NoiseLevelEstimator) was trained on event shape {estimator.event_shape}, "
                             f"got shape {shape}")
        grid, log_w, floor = estimator.grid, estimator.log_weights, estimator.noise_range[0]
    elif not isinstance(t_move, NoiseGrid):
        raise ValueError(f"`t_move` must be a dmcmc.NoiseGrid or a trained NoiseLevelEstimator, got {t_move!r}")
    elif logdensity_fn is None:
        raise ValueError("the exact t-move (`t_move` a NoiseGrid) needs `logdensity_fn` (log p_t); for score-only "
                         "models pass a trained NoiseLevelEstimator as `t_move`")
    else:
        (grid, log_w), floor = t_move.nodes(), t_move.noise_range[0]
    if x_move is None:
        preset = correctors.mala if logdensity_fn is not None else correctors.langevin
        x_move = preset(noise_scaled_step(process, 0.5))
    elif not isinstance(x_move, correctors.Corrector):
        raise ValueError(f"`x_move` must be a probkit.smc Corrector (e.g. smc.mala(dmcmc.noise_scaled_step(process, "
                         f"0.5))), got {x_move!r}")
    elif x_move.adjusted and logdensity_fn is None:
        raise ValueError(f"`x_move` {x_move.name!r} is Metropolis-adjusted and needs `logdensity_fn` (log p_t); use "
                         "smc.langevin for score-only models")
    if not isinstance(denoise, Denoise):
        raise ValueError(f"`denoise` must be a dmcmc.Denoise, got {denoise!r}")
    _checks.choice("denoise.integrator", denoise.integrator, INTEGRATORS)
    _checks.choice("denoise.grid", denoise.grid, GRIDS)
    t_end = process.t_min if denoise.t_min is None else _checks.scalar("denoise.t_min", denoise.t_min, low=0.0)
    if not t_end < floor:
        raise ValueError(f"`denoise.t_min` ({t_end}) must lie below the noise range, which starts at {floor}")
    denoise = Denoise(denoise.integrator, _checks.positive_int("denoise.num_steps", denoise.num_steps), denoise.grid,
                      float(t_end), _checks.scalar("denoise.eta_ddim", denoise.eta_ddim, low=0.0))
    key_init, key_run, key_denoise = jax.random.split(key, 3)
    if x_init is None:
        x_init = process.prior_sample(key_init, (sizes[0], *shape))
    else:
        x_init = jnp.asarray(x_init, jnp.result_type(float))
        if x_init.shape != (sizes[0], *shape):
            raise ValueError(f"`x_init` must have shape {(sizes[0], *shape)}, got {x_init.shape}")
        if not _checks.is_traced(x_init) and not bool(jnp.all(jnp.isfinite(x_init))):
            raise ValueError("`x_init` must be finite")
    check_score_output(score_fn, x_init[0])
    if logdensity_fn is not None and output_shape(logdensity_fn, x_init[0], jnp.asarray(0.5, x_init.dtype)) != ():
        raise ValueError("`logdensity_fn` must return a scalar for ONE particle")
    return _Program(key_run, key_denoise, x_init, process, score_fn, logdensity_fn, x_move, grid, log_w, estimator,
                    denoise, sizes)


def _sweep_keys(key_run: Array, num_chains: int, num_sweeps: int) -> Array:
    """``(num_sweeps, num_chains)`` keys; chain c's keys depend on ``split(key_run)[c]`` only."""
    keys = jax.vmap(lambda k: jax.random.split(k, num_sweeps))(jax.random.split(key_run, num_chains))
    return jnp.swapaxes(keys, 0, 1)


def _sweep(kernel: DLGKernel, state, keys):
    """One Gibbs sweep of every chain; flags chains whose state went NaN/inf (inside the scan)."""
    state, info = jax.vmap(kernel.step)(keys, state)
    bad = ~(jnp.all(jnp.isfinite(state.x.reshape(state.x.shape[0], -1)), axis=1) & jnp.isfinite(state.t))
    return state, (info, bad)


@filter_jit
def _run(p: _Program, progress: bool = False) -> tuple[DLGResult, Array, Array]:
    num_chains, num_samples, burn_in, thin = p.sizes
    kernel = p.kernel()
    sweep = functools.partial(_sweep, kernel)
    keys = _sweep_keys(p.key_run, num_chains, burn_in + num_samples * thin)
    state = jax.vmap(kernel.init)(p.x_init)
    state, (burn_info, burn_bad) = progress_scan(sweep, state, keys[:burn_in], enabled=progress, desc="dlg burn-in")

    def keep(state, ks):
        state, (info, bad) = jax.lax.scan(sweep, state, ks)
        return state, (state.x, info, bad)

    keep_keys = keys[burn_in:].reshape(num_samples, thin, *keys.shape[1:])
    _, (xs, info, bad) = progress_scan(keep, state, keep_keys, enabled=progress, desc="dlg")
    flat = lambda a: a.reshape(num_samples * thin, num_chains)  # noqa: E731  (S, thin, C) -> (S * thin, C)
    t_trace = jnp.concatenate([burn_info.t, flat(info.t)]).T
    chain_bad = jnp.concatenate([burn_bad, flat(bad)])
    out, denoise_bad = _assemble(p, kernel, jnp.swapaxes(xs, 0, 1), info.t[:, -1].T, t_trace,
                                 info.acceptance_rate[:, -1].T, flat(info.acceptance_rate))
    return out, chain_bad, denoise_bad


def _assemble(p: _Program, kernel: DLGKernel, xs, ts, t_trace, acc, acc_post) -> tuple[DLGResult, Array]:
    """The denoising pass over the kept draws ``xs`` ``(C, S, *shape)`` at ``ts`` ``(C, S)``, and the
    result; ``acc_post``: the acceptance of every post-burn-in sweep ``(S * thin, C)``."""
    num_chains, num_samples, burn_in, thin = p.sizes
    flat_x = xs.reshape(num_chains * num_samples, *xs.shape[2:])
    samples = denoise_samples(p.key_denoise, p.process, p.score_fn, flat_x, ts.reshape(-1), p.denoise)
    per_sample = (burn_in + num_samples * thin) / num_samples
    nfe_mcmc = per_sample * kernel.nfe_per_step
    integ = make_integrator(p.denoise.integrator, p.process, p.score_fn, eta_ddim=p.denoise.eta_ddim)
    nfe_denoise = p.denoise.num_steps * integ.nfe_per_step
    denoise_bad = ~jnp.all(jnp.isfinite(samples.reshape(samples.shape[0], -1)), axis=1)
    acc_mean = jnp.mean(jax.lax.optimization_barrier(acc_post))  # unfused: bitwise equal to a checkpointed run
    return DLGResult(
        samples=samples, x=xs, t=ts, t_trace=t_trace, acceptance=acc, acceptance_rate=acc_mean,
        nfe=nfe_mcmc + nfe_denoise, nfe_mcmc=nfe_mcmc, nfe_denoise=nfe_denoise,
        t_evals=per_sample * kernel.t_evals_per_step, x_move=kernel.x_move, t_move=kernel.t_move,
        grid=p.grid, grid_log_weights=p.log_weights,
    ), denoise_bad


def _check_flags(chain_bad, denoise_bad, x_move: str, burn_in: int, out: DLGResult | None = None) -> None:
    """After the run (concrete flags only): ValueError for the first sweep ``(sweeps, chains)``
    whose chain state went non-finite, for non-finite denoised samples, or for an adjusted x-move
    that accepted nothing (``out``)."""
    if _checks.is_traced(chain_bad, denoise_bad):
        return
    chain_bad, denoise_bad = np.asarray(chain_bad), np.asarray(denoise_bad)
    if chain_bad.any():
        sweep = int(np.flatnonzero(chain_bad.any(axis=1))[0])
        raise ValueError(
            f"non-finite chain state at Gibbs sweep {sweep} ({'burn-in' if sweep < burn_in else 'sampling'}; chain "
            f"{int(np.flatnonzero(chain_bad[sweep])[0])}) in the {x_move!r} x-move: check `score_fn` / "
            "`logdensity_fn` (NaN/inf values) and the x-move's step size (too large a step diverges)")
    if denoise_bad.any():
        raise ValueError(
            f"non-finite samples out of the denoising pass (sample {int(np.flatnonzero(denoise_bad)[0])}, "
            f"{int(denoise_bad.sum())} in all) while the chains stayed finite: check `score_fn` between "
            "`denoise.t_min` and the noise range (NaN/inf values), the x-move's step size (chain states far out of "
            "range) or `denoise`")
    if out is not None and float(out.acceptance_rate) == 0.0:
        raise ValueError(
            f"the {x_move!r} x-move accepted no proposal in any chain (acceptance 0.0): the chains never moved and "
            "the samples are their start values denoised; its step size is far too large (or `logdensity_fn` is "
            "NaN/inf), try smc.mala(dmcmc.noise_scaled_step(process, 0.5))")


class DLGDiagnostics(NamedTuple):
    """Split-R-hat and bulk ESS (ArviZ) of the noise level and of the x coordinates
    (``rhat_x_max`` / ``ess_x_min``: the worst over the first ``max_coords`` coordinates)."""

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
    idata = result.to_inference_data(max_coords)
    rhat, ess = az.rhat(idata), az.ess(idata, method="bulk")
    return DLGDiagnostics(float(rhat["t"]), float(ess["t"]), float(np.max(rhat["x"].values)),
                          float(np.min(ess["x"].values)))
