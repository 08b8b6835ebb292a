"""MCMC moves from BlackJAX kernels: the SMC correctors of the Feynman-Kac engine, also used by
DLG's x-move (:mod:`probkit.dmcmc.dlg`).

After reweighting/resampling at time ``t_next`` the particles target the intermediate
distribution q_{t_next}; a q_{t_next}-invariant MCMC move rejuvenates them (resample-move,
Gilks & Berzuini 2001) without changing the target, and is what lets duplicated particles
separate when the proposal is deterministic (eta = 0).

* :func:`from_blackjax` — the one adapter: any BlackJAX top-level algorithm built as
  ``algorithm(logdensity_fn, **parameters)`` with ``init(position)`` / ``step(key, state)``
  (``blackjax.mala``, ``hmc``, ``nuts``, ``mclmc``, ...), run ``num_steps`` times on
  ``log q_t = target.logdensity_fn(x, t)``.
* :func:`mala`, :func:`hmc` — presets of :func:`from_blackjax`.
* :func:`langevin` (alias :func:`ula`) — *unadjusted* Langevin x' = x + h S(x) + sqrt(2h) z with
  the target score (``target.score_fn``) through ``blackjax.sgld`` (the exact score as its
  gradient estimator, temperature 1), for score-only models (networks) that have no log density;
  biased at O(h) — the result's ``corrector`` field records which one ran.

**Step sizes** have one meaning everywhere: the absolute step of the BlackJAX kernel (the
Langevin step h of MALA / ULA, the leapfrog step of HMC / NUTS). Any parameter may be a
function ``t -> value`` (for diffusion targets a step proportional to sigma_t^2 is natural).
Parameters are traced arrays when numeric, so a sweep over step sizes compiles once.

A corrector acts on a :class:`MoveTarget` — the intermediate target and where the position lives
in a particle — which a sampler's model builder returns beside its ``FeynmanKacModel``
(``model, target = probkit.fkc.fkc_model(...)``); for a model of your own pass
``run_smc(key, model, n, ts, target=MoveTarget(logdensity_fn), corrector=...)``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from probkit import _checks

Array = jax.Array

__all__ = ["MoveTarget", "Corrector", "from_blackjax", "mala", "hmc", "langevin", "ula"]


class MoveTarget(NamedTuple):
    """What an MCMC move needs to know about a Feynman-Kac model, all optional.

    Attributes:
      logdensity_fn: ``(x, t) -> scalar``, unnormalised log q_t of the intermediate target at
        ``t`` as a function of the position x (Metropolis-adjusted moves need it).
      score_fn: ``(x, t) -> array like x``, ∇ log q_t (unadjusted Langevin; default
        ``grad logdensity_fn``).
      position: ``particle -> x``, the leaf a move changes (default: the particle). The engine
        also returns the final particles projected by it.
      set_position: ``(particle, x, t) -> particle``, put a moved position back (default: x);
        recompute cached quantities that depend on x here.
    """

    logdensity_fn: Callable[[Array, Array], Array] | None = None
    score_fn: Callable[[Array, Array], Array] | None = None
    position: Callable[[Any], Array] | None = None
    set_position: Callable[[Any, Array, Array], Any] | None = None

    def get(self, particle):
        return particle if self.position is None else self.position(particle)

    def put(self, particle, x, t):
        return x if self.set_position is None else self.set_position(particle, x, t)


class Corrector(NamedTuple):
    """An MCMC move: ``make(target)`` (a :class:`MoveTarget`) returns
    ``kernel(key, particle, t) -> (particle, acceptance)`` acting on ONE particle. ``nfe``:
    gradient/score evaluations per particle per engine step; ``adjusted``: needs
    ``target.logdensity_fn`` (Metropolis-adjusted) rather than a score."""

    name: str
    make: Callable[[MoveTarget], Callable[[Array, Any, Array], tuple[Any, Array]]]
    nfe: int
    adjusted: bool


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


def _blackjax_make(algorithm, num_steps, parameters, target):
    algorithm = algorithm.value

    def kernel(key, particle, t):
        x = target.get(particle)
        params = {k: _at(v, t) for k, v in parameters.items()}
        if "inverse_mass_matrix" in params and params["inverse_mass_matrix"] is None:
            size = sum(a.size for a in jax.tree.leaves(x))
            params["inverse_mass_matrix"] = jnp.ones((size,), jnp.result_type(float))
        alg = algorithm(lambda z: target.logdensity_fn(z, t), **params)

        def body(state, k):
            state, info = alg.step(k, state)
            return state, jnp.asarray(getattr(info, "acceptance_rate", 1.0), jnp.result_type(float))

        state, acc = jax.lax.scan(body, alg.init(x), jax.random.split(key, num_steps))
        return target.put(particle, state.position, t), jnp.mean(acc)

    return kernel


def from_blackjax(algorithm: Callable, num_steps: int = 1, *, nfe: int | None = None, name: str | None = None,
                  **parameters) -> Corrector:
    """``num_steps`` moves of a BlackJAX algorithm on ``target.logdensity_fn(x, t)``.

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
    """``num_steps`` MALA moves (``blackjax.mala``) on log q_t = ``target.logdensity_fn(x, t)``."""
    _checks.step_size(step_size)
    return from_blackjax(blackjax.mala, num_steps, nfe=int(num_steps) + 1, name="mala", step_size=step_size)


def hmc(
    step_size: float | Callable[[Array], Array],
    num_integration_steps: int = 5,
    num_steps: int = 1,
    inverse_mass_matrix: Array | None = None,
) -> Corrector:
    """``num_steps`` HMC moves (``blackjax.hmc``, leapfrog) on ``target.logdensity_fn(x, t)``.

    ``inverse_mass_matrix`` defaults to the identity (a vector of ones over the flattened position).
    """
    _checks.step_size(step_size)
    num_integration_steps = _checks.positive_int("num_integration_steps", num_integration_steps)
    num_steps = _checks.positive_int("num_steps", num_steps)
    return from_blackjax(blackjax.hmc, num_steps, nfe=num_steps * num_integration_steps + 1, name="hmc",
                         step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                         num_integration_steps=num_integration_steps)


def _ula_make(step_size, num_steps, target):
    score = target.score_fn if target.score_fn is not None else jax.grad(target.logdensity_fn)
    ula = blackjax.sgld(score)  # the "minibatch" slot carries t

    def kernel(key, particle, t):
        h = _at(step_size, t)
        x = jax.lax.fori_loop(0, num_steps, lambda i, z: ula.step(jax.random.fold_in(key, i), z, t, h),
                              target.get(particle))
        return target.put(particle, x, t), jnp.ones((), jnp.result_type(float))

    return kernel


def langevin(step_size: float | Callable[[Array], Array], num_steps: int = 1) -> Corrector:
    """Unadjusted Langevin x' = x + h S(x, t) + sqrt(2h) z with S = ``target.score_fn``
    (or ``grad target.logdensity_fn``), by ``blackjax.sgld``. Score-only: no accept/reject, O(h) bias."""
    _checks.step_size(step_size)
    num_steps = _checks.positive_int("num_steps", num_steps)
    h = step_size if callable(step_size) else jnp.asarray(step_size)
    return Corrector("langevin", Partial(_ula_make, h, num_steps), num_steps, False)


ula = langevin
