"""The Denoising Langevin Gibbs kernel of ONE chain (Kim & Ye 2023, "Denoising MCMC for
Accelerating Diffusion-Based Generative Models", ICML, arXiv 2209.14593).

DLG runs MCMC on the joint of data and noise level, discretised on a grid ``t_j`` with prior
masses ``w_j`` (:class:`~probkit.dmcmc.NoiseGrid`),

    pi(x, t_j) ∝ p_{t_j}(x) w_j,                                              (1)

whose t-marginal is w (since ∫ p_t(x) dx = 1) and whose x | t law is the noised data law p_t.
A Gibbs sweep draws

* **t | x** from the exact categorical ``P(t_j | x) ∝ p_{t_j}(x) w_j`` when ``logdensity_fn =
  log p_t`` is given (mixtures, user targets), otherwise from a learned noise-level classifier
  ``q(t_j | x)`` (:mod:`probkit.dmcmc.noise_level`; approximate);
* **x | t** by any MCMC move of :mod:`probkit.smc.correctors` at the new t: ``mala`` / ``hmc`` /
  ``from_blackjax(...)`` (Metropolis-adjusted on ``log p_t``) or ``langevin`` (unadjusted, the
  score only, biased at O(h)).

With the exact t-move and an adjusted x-move the chain is an exact Gibbs sampler of (1).

**Step sizes** are absolute, as everywhere in :mod:`probkit.smc.correctors` (the Langevin step h
of MALA / ULA, the leapfrog step of HMC), and may be functions of t. Since p_t has variance
>= sigma_t^2 in every direction, a step that follows the noise level keeps the acceptance
roughly constant across t: :func:`noise_scaled_step` is ``t -> scale * sigma_t^power`` (power 2
for h, 1 for a leapfrog step).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from probkit import _checks
from probkit.diffusion.schedules import Process
from probkit.dmcmc.noise_level import NoiseLevelEstimator, noise_level_log_probs, t_conditional_log_probs
from probkit.smc.correctors import Corrector, MoveTarget

Array = jax.Array

__all__ = ["DLGState", "DLGInfo", "DLGKernel", "build_kernel", "noise_scaled_step"]


class DLGState(NamedTuple):
    """State of ONE chain: position ``x``, grid index ``t_index`` and noise level ``t``."""

    x: Array
    t_index: Array
    t: Array


class DLGInfo(NamedTuple):
    """Per-sweep information: mean acceptance of the x-move (1 for unadjusted moves) and the new t."""

    acceptance_rate: Array
    t: Array


class DLGKernel(NamedTuple):
    """``init(x) -> DLGState``, ``step(key, state) -> (DLGState, DLGInfo)`` for ONE chain.

    ``nfe_per_step``: score-model evaluations per sweep (the x-move's ``nfe``);
    ``t_evals_per_step``: evaluations of ``log p_t`` (exact t-move) or of the classifier (learned).
    """

    init: Callable[[Array], DLGState]
    step: Callable[[Array, DLGState], tuple[DLGState, DLGInfo]]
    nfe_per_step: int
    t_evals_per_step: int
    x_move: str
    t_move: str


def _noise_scaled(process: Process, scale: Array, power: float, t: Array) -> Array:
    return scale * process.sigma(t) ** power


def noise_scaled_step(process: Process, scale: float, power: float = 2.0) -> Callable[[Array], Array]:
    """The absolute step schedule ``t -> scale * sigma_t^power`` for a corrector, e.g.
    ``smc.mala(noise_scaled_step(process, 0.5))`` or ``smc.hmc(noise_scaled_step(process, 0.5, 1.0))``.
    A ``Partial`` with ``scale`` traced, so new scales reuse one compiled program."""
    scale = _checks.scalar("scale", scale, low=0.0, low_open=True, as_array=True)
    return Partial(_noise_scaled, process, scale, _checks.scalar("power", power))


def build_kernel(
    score_fn: Callable[[Array, Array], Array],
    x_move: Corrector,
    grid: Array,
    log_weights: Array,
    *,
    logdensity_fn: Callable[[Array, Array], Array] | None = None,
    noise_estimator: NoiseLevelEstimator | None = None,
) -> DLGKernel:
    """The DLG Gibbs kernel of ONE chain (vmap it over chains) on the grid ``(grid, log_weights)``
    (:meth:`NoiseGrid.nodes`). The t-move is learned when ``noise_estimator`` is given (its grid),
    else exact from ``logdensity_fn``. No validation: :func:`~probkit.dmcmc.dlg` validates."""
    if noise_estimator is not None:
        t_log_probs, t_evals, t_move = Partial(noise_level_log_probs, noise_estimator), 1, "learned"
    else:
        t_log_probs = lambda x: t_conditional_log_probs(logdensity_fn, x, grid, log_weights)  # noqa: E731
        t_evals, t_move = int(grid.shape[0]), "exact"
    move_x = x_move.make(MoveTarget(logdensity_fn, score_fn))

    def init(x: Array) -> DLGState:
        j = jnp.asarray(grid.shape[0] - 1, jnp.int32)  # the first sweep draws t | x afresh
        return DLGState(jnp.asarray(x), j, grid[j])

    def step(key: Array, state: DLGState) -> tuple[DLGState, DLGInfo]:
        k_t, k_x = jax.random.split(key)
        j = jax.random.categorical(k_t, t_log_probs(state.x)).astype(jnp.int32)
        x, acc = move_x(k_x, state.x, grid[j])
        return DLGState(x, j, grid[j]), DLGInfo(acc, grid[j])

    return DLGKernel(init, step, int(x_move.nfe), t_evals, x_move.name, t_move)
