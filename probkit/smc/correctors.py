"""MCMC moves from BlackJAX kernels: the SMC correctors of the Feynman-Kac engine, also used by
DLG's x-move (:mod:`probkit.dmcmc.dlg`).

After reweighting/resampling at time ``t_next`` the particles target the intermediate
distribution q_{t_next}; a q_{t_next}-invariant MCMC move rejuvenates them (resample-move,
Gilks & Berzuini 2001) without changing the target, and is what lets duplicated particles
separate when the proposal is deterministic (eta = 0).

* :func:`from_blackjax` — the one adapter: any BlackJAX top-level algorithm built as
  ``algorithm(logdensity_fn, **parameters)`` with ``init(position)`` / ``step(key, state)``
  (``blackjax.mala``, ``hmc``, ``nuts``, ``mclmc``, ...), run ``num_steps`` times on
  ``log q_t = model.log_target(x, t)``.
* :func:`mala`, :func:`hmc` — presets of :func:`from_blackjax`.
* :func:`langevin` (alias :func:`ula`) — *unadjusted* Langevin x' = x + h S(x) + sqrt(2h) z with
  the target score (``model.target_score``) through ``blackjax.sgld`` (the exact score as its
  gradient estimator, temperature 1), for score-only models (networks) that have no log density;
  biased at O(h) — the result's ``corrector`` field records which one ran.

**Step sizes** have one meaning everywhere: the absolute step of the BlackJAX kernel (the
Langevin step h of MALA / ULA, the leapfrog step of HMC / NUTS). Any parameter may be a
function ``t -> value`` (for diffusion targets a step proportional to sigma_t^2 is natural).
Parameters are traced arrays when numeric, so a sweep over step sizes compiles once.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from probkit import _checks

Array = jax.Array

__all__ = ["Corrector", "from_blackjax", "mala", "hmc", "langevin", "ula"]


class Corrector(NamedTuple):
    """An MCMC move: ``make(model)`` returns ``kernel(key, particle, t) -> (particle, acceptance)``
    acting on ONE particle. ``nfe``: gradient/score evaluations per particle per engine step;
    ``adjusted``: needs ``model.log_target`` (Metropolis-adjusted) rather than a score."""

    name: str
    make: Callable[[Any], Callable[[Array, Any, Array], tuple[Any, Array]]]
    nfe: int
    adjusted: bool


def _io(model):
    get = model.position if model.position is not None else (lambda p: p)
    put = model.set_position if model.set_position is not None else (lambda p, x, t: x)
    return get, put


def _at(value, t):
    return value(t) if callable(value) else value


class _ByIdentity:
    """Holds an object that may be unhashable (e.g. ``blackjax.mala``) as static jit data,
    compared by identity."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.value is self.value


def _blackjax_make(algorithm, num_steps, parameters, model):
    get, put = _io(model)
    algorithm = algorithm.value

    def kernel(key, particle, t):
        x = get(particle)
        params = {k: _at(v, t) for k, v in parameters.items()}
        if "inverse_mass_matrix" in params and params["inverse_mass_matrix"] is None:
            size = sum(a.size for a in jax.tree.leaves(x))
            params["inverse_mass_matrix"] = jnp.ones((size,), jnp.result_type(float))
        alg = algorithm(lambda z: model.log_target(z, t), **params)

        def body(state, k):
            state, info = alg.step(k, state)
            return state, jnp.asarray(getattr(info, "acceptance_rate", 1.0), jnp.result_type(float))

        state, acc = jax.lax.scan(body, alg.init(x), jax.random.split(key, num_steps))
        return put(particle, state.position, t), jnp.mean(acc)

    return kernel


def from_blackjax(algorithm: Callable, num_steps: int = 1, *, nfe: int | None = None, name: str | None = None,
                  **parameters) -> Corrector:
    """``num_steps`` moves of a BlackJAX algorithm on ``model.log_target(x, t)``.

    ``algorithm(logdensity_fn, **parameters)`` must return an object with ``init(position)``
    and ``step(key, state) -> (state, info)`` (BlackJAX's top-level API); parameters may be
    functions of t. ``nfe``: gradient evaluations per particle per engine step (default
    ``num_steps``; for NUTS give the expected number of leapfrog steps). Example::

        smc.from_blackjax(blackjax.nuts, step_size=0.1, inverse_mass_matrix=jnp.ones(d), nfe=16)
    """
    num_steps = _checks.positive_int("num_steps", num_steps)
    nfe = num_steps if nfe is None else _checks.positive_int("nfe", nfe, minimum=0)
    if name is None:  # blackjax.nuts -> "nuts" (the module of its kernel)
        kernel_fn = getattr(algorithm, "build_kernel", algorithm)
        name = getattr(kernel_fn, "__module__", "").rsplit(".", 1)[-1] or type(algorithm).__name__
    params = {k: v if callable(v) or v is None or isinstance(v, int) else jnp.asarray(v) for k, v in parameters.items()}
    return Corrector(str(name), Partial(_blackjax_make, _ByIdentity(algorithm), num_steps, params), nfe, True)


def mala(step_size: float | Callable[[Array], Array], num_steps: int = 1) -> Corrector:
    """``num_steps`` MALA moves (``blackjax.mala``) on log q_t = ``model.log_target(x, t)``."""
    _checks.step_size(step_size)
    return from_blackjax(blackjax.mala, num_steps, nfe=int(num_steps) + 1, name="mala", step_size=step_size)


def hmc(
    step_size: float | Callable[[Array], Array],
    num_integration_steps: int = 5,
    num_steps: int = 1,
    inverse_mass_matrix: Array | None = None,
) -> Corrector:
    """``num_steps`` HMC moves (``blackjax.hmc``, leapfrog) on ``model.log_target(x, t)``.

    ``inverse_mass_matrix`` defaults to the identity (a vector of ones over the flattened position).
    """
    _checks.step_size(step_size)
    num_integration_steps = _checks.positive_int("num_integration_steps", num_integration_steps)
    num_steps = _checks.positive_int("num_steps", num_steps)
    return from_blackjax(blackjax.hmc, num_steps, nfe=num_steps * num_integration_steps + 1, name="hmc",
                         step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                         num_integration_steps=num_integration_steps)


def _ula_make(step_size, num_steps, model):
    get, put = _io(model)
    score = model.target_score if model.target_score is not None else jax.grad(model.log_target)
    ula = blackjax.sgld(lambda x, t: score(x, t))  # the "minibatch" slot carries t

    def kernel(key, particle, t):
        h = _at(step_size, t)
        x = jax.lax.fori_loop(0, num_steps, lambda i, z: ula.step(jax.random.fold_in(key, i), z, t, h), get(particle))
        return put(particle, x, t), jnp.ones((), jnp.result_type(float))

    return kernel


def langevin(step_size: float | Callable[[Array], Array], num_steps: int = 1) -> Corrector:
    """Unadjusted Langevin x' = x + h S(x, t) + sqrt(2h) z with S = ``model.target_score``
    (or ``grad model.log_target``), by ``blackjax.sgld``. Score-only: no accept/reject, O(h) bias."""
    _checks.step_size(step_size)
    num_steps = _checks.positive_int("num_steps", num_steps)
    h = step_size if callable(step_size) else jnp.asarray(step_size)
    return Corrector("langevin", Partial(_ula_make, h, num_steps), num_steps, False)


ula = langevin
