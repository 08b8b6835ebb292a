"""MCMC correctors for the Feynman-Kac engine, built from BlackJAX kernels.

After reweighting/resampling at time ``t_next`` the particles target the intermediate
distribution q_{t_next}; a q_{t_next}-invariant MCMC move rejuvenates them (resample-move,
Gilks & Berzuini 2001) without changing the target, and is what lets duplicated particles
separate when the proposal is deterministic (eta = 0).

* :func:`mala` — Metropolis-adjusted Langevin (``blackjax.mala``) on ``model.log_target``.
* :func:`hmc` — Hamiltonian Monte Carlo (``blackjax.hmc``) on ``model.log_target``.
* :func:`langevin` — *unadjusted* Langevin x' = x + h S(x) + sqrt(2h) z with the target score
  (``model.target_score``), for score-only models (networks) that have no log density; it is
  biased at O(h) — the result's ``corrector`` field records which one ran.

``step_size`` may be a float or a function ``t -> step size`` (for diffusion targets a step
proportional to sigma_t^2 is natural). Each constructor returns a :class:`Corrector`; pass it as
``run_smc(..., corrector=...)``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["Corrector", "mala", "hmc", "langevin", "CORRECTORS"]

CORRECTORS = ("mala", "hmc", "langevin")


class Corrector(NamedTuple):
    """An MCMC move: ``make(model)`` returns ``kernel(key, particle, t) -> (particle, acceptance)``
    acting on ONE particle. ``nfe``: gradient/score evaluations per particle per engine step."""

    name: str
    make: Callable[[Any], Callable[[Array, Any, Array], tuple[Any, Array]]]
    nfe: int
    adjusted: bool


def _check(step_size, num_steps: int, name: str = "num_steps") -> None:
    if not callable(step_size):
        if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"`step_size` must be a positive float or a callable t -> float, got {step_size!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {num_steps!r}")


def _step(step_size, t):
    return step_size(t) if callable(step_size) else step_size


def _io(model):
    get = model.position if model.position is not None else (lambda p: p)
    put = model.set_position if model.set_position is not None else (lambda p, x, t: x)
    return get, put


def mala(step_size: float | Callable[[Array], Array], num_steps: int = 1) -> Corrector:
    """``num_steps`` MALA moves (``blackjax.mala``) on log q_t = ``model.log_target(x, t)``."""
    _check(step_size, num_steps)

    def make(model):
        get, put = _io(model)

        def kernel(key, particle, t):
            alg = blackjax.mala(lambda x: model.log_target(x, t), _step(step_size, t))

            def body(state, k):
                state, info = alg.step(k, state)
                return state, info.acceptance_rate

            state, acc = jax.lax.scan(body, alg.init(get(particle)), jax.random.split(key, num_steps))
            return put(particle, state.position, t), jnp.mean(acc)

        return kernel

    return Corrector("mala", make, num_steps + 1, True)


def hmc(
    step_size: float | Callable[[Array], Array],
    num_integration_steps: int = 5,
    num_steps: int = 1,
    inverse_mass_matrix: Array | None = None,
) -> Corrector:
    """``num_steps`` HMC moves (``blackjax.hmc``, leapfrog) on ``model.log_target(x, t)``.

    ``inverse_mass_matrix`` defaults to the identity (a vector of ones over the flattened position).
    """
    _check(step_size, num_steps)
    _check(1.0, num_integration_steps, "num_integration_steps")

    def make(model):
        get, put = _io(model)

        def kernel(key, particle, t):
            x = get(particle)
            size = sum(a.size for a in jax.tree.leaves(x))
            imm = jnp.ones((size,), jnp.result_type(float)) if inverse_mass_matrix is None else inverse_mass_matrix
            alg = blackjax.hmc(lambda z: model.log_target(z, t), _step(step_size, t), imm, num_integration_steps)

            def body(state, k):
                state, info = alg.step(k, state)
                return state, info.acceptance_rate

            state, acc = jax.lax.scan(body, alg.init(x), jax.random.split(key, num_steps))
            return put(particle, state.position, t), jnp.mean(acc)

        return kernel

    return Corrector("hmc", make, num_steps * num_integration_steps + 1, True)


def langevin(step_size: float | Callable[[Array], Array], num_steps: int = 1) -> Corrector:
    """Unadjusted Langevin x' = x + h S(x, t) + sqrt(2h) z with S = ``model.target_score``
    (or ``grad model.log_target``). Score-only: no accept/reject, O(h) bias."""
    _check(step_size, num_steps)

    def make(model):
        get, put = _io(model)
        if model.target_score is not None:
            score = model.target_score
        else:
            score = jax.grad(model.log_target)

        def kernel(key, particle, t):
            h = _step(step_size, t)

            def body(x, k):
                z = jax.random.normal(k, x.shape, x.dtype)
                return x + h * score(x, t) + jnp.sqrt(2.0 * h) * z, None

            x, _ = jax.lax.scan(body, get(particle), jax.random.split(key, num_steps))
            return put(particle, x, t), jnp.ones((), jnp.result_type(float))

        return kernel

    return Corrector("langevin", make, num_steps, False)
