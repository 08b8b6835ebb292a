r"""One generic Feynman-Kac particle engine, run by one jitted ``lax.scan``.

A **Feynman-Kac model** (Del Moral 2004; Chopin & Papaspiliopoulos 2020, *An Introduction to
Sequential Monte Carlo*, whose ``particles`` library has the same three ingredients) is an
initial law M_0, Markov transitions M_k and potentials G_k on a decreasing time grid
``1 = t_0 > t_1 > ... > t_K``. The engine targets the sequence

    Q_k(dx_{0:k}) ∝ G_0(x_0) M_0(dx_0) ∏_{j=1}^{k} M_j(x_{j-1}, dx_j) G_j(x_{j-1}, x_j)

with N particles: propagate with M_k, multiply the weights by G_k, and resample adaptively when
the effective sample size ESS = (Σ w)^2 / Σ w^2 drops below ``ess_threshold · N``. The running
estimate of the normalising constant is

    log Z_k = log Z_{k-1} + log Σ_i W^i_{k-1} G_k(x^i_{k-1}, x^i_k),   W normalised weights,

which stays unbiased (for Z) across resampling because resampling resets W to 1/N.

Everything is computed in log space with ``logsumexp``, so a log-weight spread of 1e4 is fine.
Anything that would silently turn results into NaN is *flagged inside the scan* (per-step
booleans in the history, no host sync) and :func:`run_smc` raises ``ValueError`` after the scan,
naming the step and time: a step where every weight is zero (all log-potentials ``-inf``), or
any non-finite particle coordinate / NaN or ``+inf`` log-potential (e.g. a score that returned
NaN). We chose flags over ``checkify`` because they cost one reduction per step, survive
``vmap``/sharding, and keep the compiled program free of effects.

Model functions act on ONE particle; the engine vmaps them. A particle is any pytree (leading
axis N is added by the engine), which gives a simple **caching pattern**: a transition may store
quantities it computed anyway (e.g. a score, or the log-weight rate at the previous point)
beside the position, and ``log_potential`` reads them from ``particle_new`` instead of calling
the network again. ``probkit.fkc`` does exactly that, so each step costs one score evaluation.
What MCMC correctors need (the intermediate log density, and which leaf of a particle is the
position) is not part of the model: pass a :class:`~probkit.smc.correctors.MoveTarget` as
``run_smc(..., target=...)``; the result's ``particles`` are then ``target.position`` of each.

Sharding: pass ``sharding=jax.sharding.NamedSharding(mesh, PartitionSpec("particles"))`` (a 1-D
mesh) and the particle axis is sharded over devices; ESS, the evidence and resampling reduce
over the global particle set, so results equal single-device results up to float rounding.

Example — a tempered-likelihood SMC sampler written by a user, on the same engine::

    import jax, jax.numpy as jnp, blackjax
    from probkit.smc import FeynmanKacModel, MoveTarget, from_blackjax, run_smc

    # prior N(0, I_2), likelihood y ~ N(x, 0.5^2 I); temperature lambda = 1 - t (t: 1 -> 0)
    y = jnp.array([1.0, -0.5])
    log_prior = lambda x: -0.5 * jnp.sum(x**2)
    log_lik = lambda x: -0.5 * jnp.sum((y - x) ** 2) / 0.25

    def log_target(x, t):                      # gamma_t = prior * lik^(1 - t)
        return log_prior(x) + (1.0 - t) * log_lik(x)

    def transition(key, t, t_next, x):         # a few MALA moves leaving gamma_{t_next} invariant
        kernel = blackjax.mala(lambda z: log_target(z, t_next), step_size=0.1)
        def body(state, k):
            return kernel.step(k, state)[0], None
        state, _ = jax.lax.scan(body, kernel.init(x), jax.random.split(key, 5))
        return state.position

    def log_potential(t, t_next, x_prev, x_new): # incremental weight gamma_{t_next}/gamma_t at x_prev
        return (t - t_next) * log_lik(x_prev)

    model = FeynmanKacModel(init=lambda key: jax.random.normal(key, (2,)),
                            transition=transition, log_potential=log_potential)
    out = run_smc(jax.random.PRNGKey(0), model, 4096, jnp.linspace(1.0, 0.0, 21))
    # optional resample-move: any BlackJAX kernel on the intermediate targets gamma_t
    nuts = from_blackjax(blackjax.nuts, step_size=0.3, inverse_mass_matrix=jnp.ones(2), nfe=8)
    out = run_smc(jax.random.PRNGKey(0), model, 4096, jnp.linspace(1.0, 0.0, 21),
                  target=MoveTarget(log_target), corrector=nuts)
    out.particles                  # (4096, 2) weighted draws from the posterior
    out.log_evidence               # estimates log ∫ N(x; 0, I) exp(log_lik(x)) dx
    draws = out.resample(jax.random.PRNGKey(1), 1000)
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc.ess import log_ess
from jax.scipy.special import logsumexp

from probkit import _checks
from probkit.progress import progress_scan
from probkit._results import RESAMPLING, ResultsCore
from probkit._results import resampler as _resampler
from probkit.smc.correctors import MoveTarget
from probkit.smc.resampling import ORDERED_RESAMPLING, ordered
from probkit._jit import filter_jit

Array = jax.Array
PyTree = Any

__all__ = ["FeynmanKacModel", "Particle", "SMCConfig", "SMCState", "StepInfo", "WeightedParticles", "RESAMPLING",
           "smc_init", "smc_step", "run_smc", "run_model", "finish", "check_history"]


class FeynmanKacModel(NamedTuple):
    """A Feynman-Kac model as pure functions on ONE particle (any pytree, any event shape).

    Attributes:
      init: ``key -> particle``, a draw from M_0.
      transition: ``(key, t, t_next, particle) -> particle``, the kernel M_k from t to t_next < t.
      log_potential: ``(t, t_next, particle_prev, particle_new) -> scalar``, log G_k.
      init_log_weight: ``particle -> scalar``, log G_0 (to reweight M_0 towards the t = t_0
        target); ``None`` means 0.
    """

    init: Callable[[Array], PyTree]
    transition: Callable[[Array, Array, Array, PyTree], PyTree]
    log_potential: Callable[[Array, Array, PyTree, PyTree], Array]
    init_log_weight: Callable[[PyTree], Array] | None = None


class Particle(NamedTuple):
    """The particle of the diffusion samplers (``probkit.fkc``, ``probkit.inverse``): position
    ``x``, the cached log-potential ``log_g`` of the step that produced it and, optionally, the
    cached score and log-twist ``log_l`` at (x, t)."""

    x: Array
    log_g: Array
    score: Array | None = None
    log_l: Array | None = None


class SMCConfig(NamedTuple):
    """The engine's options (static, hashable). Every SMC sampler (:func:`run_smc`,
    ``probkit.fkc``, ``probkit.inverse``) takes them as keyword arguments, checked once by
    :func:`make_config`:

    * ``resampling``: ``"systematic"`` (default), ``"multinomial"``, ``"stratified"``,
      ``"residual"`` (``blackjax.smc.resampling``), ``"hilbert"`` / ``"hilbert-<scheme>"``
      (systematic, stratified or ssp resampling of the particles sorted along a Hilbert curve,
      :func:`probkit.smc.resampling.ordered`), or a hashable callable
      ``(key, weights, n, positions) -> indices``.
    * ``ess_threshold``: resample when ESS < ess_threshold · N (0: never, 1: every step).
    * ``corrector``: a :class:`~probkit.smc.correctors.Corrector` (``mala``, ``hmc``,
      ``langevin``, ``from_blackjax(...)``) applied after resampling at every step, leaving the
      intermediate target at ``t_next`` invariant; needs a ``MoveTarget``.
    * ``sharding``: a ``jax.sharding.Sharding`` of the particle axis (e.g.
      ``NamedSharding(Mesh(devices, ("p",)), PartitionSpec("p"))``).
    * ``progress``: a progress bar (host callback every ~5% of the steps; silent under
      ``jax.vmap``; :func:`probkit.progress.progress_scan`).
    """

    resampling: Any = "systematic"
    ess_threshold: float = 0.5
    corrector: Any = None
    sharding: Any = None
    progress: bool = False


class SMCState(NamedTuple):
    """Particles (leading axis N), log-weights normalised to logsumexp 0, running log Z."""

    particles: PyTree
    log_weights: Array
    log_evidence: Array


class StepInfo(NamedTuple):
    """Per-step diagnostics (stacked over the grid by :func:`run_smc`).

    ``ess`` and ``log_weight_spread`` are measured after reweighting, before resampling;
    ``log_evidence_increment`` is log Σ W G; ``all_zero`` flags a step where every weight
    vanished; ``nonfinite`` a NaN/inf particle or a NaN/+inf log-potential; ``acceptance`` the
    corrector's mean acceptance rate (1 for unadjusted moves, NaN if none ran).
    """

    ess: Array
    resampled: Array
    log_weight_spread: Array
    log_evidence_increment: Array
    all_zero: Array
    nonfinite: Array
    acceptance: Array


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["particles", "log_weights", "ess", "resampled", "log_evidence", "log_weight_spread", "times",
                 "acceptance"],
    meta_fields=["nfe", "corrector"],
)
@dataclasses.dataclass(frozen=True)
class WeightedParticles(ResultsCore):
    """Result of :func:`run_smc` (DESIGN §2): weighted particles and the run's history.

    A pytree: the arrays are leaves and ``nfe`` / ``corrector`` static metadata, so it passes
    through ``jax.jit`` / ``jax.vmap`` as a return value (``jax.vmap`` over keys gives one
    result whose arrays carry a leading batch axis).

    Attributes:
      particles: pytree with leading axis N, the positions (``target.position`` of each
        particle); for probkit.fkc / probkit.inverse an array ``(N, *event_shape)``.
      log_weights: ``(N,)`` normalised log-weights (logsumexp = 0).
      ess: ``(K,)`` effective sample size after each step's reweighting.
      resampled: ``(K,)`` whether the step resampled.
      log_evidence: estimate of log Z (normalising constant of the final target relative to M_0).
      log_weight_spread: ``(K,)`` max - min of the finite log-weights after reweighting.
      nfe: score (or gradient) evaluations per particle, correctors included.
      times: ``(K + 1,)`` the grid.
      acceptance: ``(K,)`` mean corrector acceptance (NaN if no corrector).
      corrector: name of the corrector that ran (``"none"``, ``"mala"``, ``"hmc"``, ``"langevin"``, ...).
    """

    particles: PyTree
    log_weights: Array
    ess: Array
    resampled: Array
    log_evidence: Array
    log_weight_spread: Array
    nfe: int
    times: Array
    acceptance: Array
    corrector: str = "none"

    def health(self) -> dict:
        """Health summary of the run: ``min_ess`` (and its step), ``num_resamplings``,
        ``max_log_weight_spread`` and ``final_ess`` (Python numbers; needs concrete arrays)."""
        ess = np.asarray(self.ess)
        k = int(np.nanargmin(ess)) if ess.size and np.any(np.isfinite(ess)) else -1
        spread = np.asarray(self.log_weight_spread)
        return {"min_ess": float(ess[k]) if k >= 0 else float("nan"), "min_ess_step": k,
                "num_particles": self.num_particles, "num_steps": int(ess.size),
                "num_resamplings": int(np.sum(np.asarray(self.resampled))),
                "max_log_weight_spread": float(np.max(spread)) if spread.size else 0.0,
                "final_ess": float(ess[-1]) if ess.size else float("nan")}

    def __repr__(self) -> str:
        shapes = jax.tree.map(lambda a: tuple(jnp.shape(a)), self.particles)
        return (f"WeightedParticles(particles={shapes}, steps={jnp.shape(self.ess)[-1]}, nfe={self.nfe}, "
                f"corrector={self.corrector!r}, log_evidence={_fmt(self.log_evidence)}, "
                f"final_ess={_fmt(self.ess[..., -1] if jnp.shape(self.ess)[-1] else jnp.nan)})")


def _fmt(a) -> str:
    if isinstance(a, jax.core.Tracer):
        return "<traced>"
    a = np.asarray(a)
    return f"{float(a):.4g}" if a.ndim == 0 else f"<{a.shape}>"


# ----------------------------------------------------------------------------------------------
def _constrain(tree: PyTree, sharding) -> PyTree:
    if sharding is None:
        return tree
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), tree)


def _positions_finite(particles: PyTree, target: MoveTarget) -> Array:
    """All particle *positions* (``target.position``, default the whole particle) are finite.
    Cached fields beside the position may hold -inf (e.g. a zero-weight particle's cached
    log-potential): only the positions are checked here; NaN/+inf log-potentials are flagged
    from the log-weights."""
    leaves = [a for a in jax.tree.leaves(jax.vmap(target.get)(particles)) if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(a)) for a in leaves] or [True]))


def smc_init(key: Array, model: FeynmanKacModel, num_particles: int, config: SMCConfig = SMCConfig()) -> SMCState:
    """Draw N particles from M_0, weight them by G_0; log Z_0 = log mean G_0."""
    keys = jax.random.split(key, num_particles)
    particles = _constrain(jax.vmap(model.init)(keys), config.sharding)
    init_lw = model.init_log_weight or (lambda p: jnp.zeros((), jnp.result_type(float)))
    lw = _constrain(jax.vmap(init_lw)(particles), config.sharding)
    log_norm = logsumexp(lw)
    return SMCState(particles, lw - log_norm, log_norm - math.log(num_particles))


def smc_step(
    key: Array, state: SMCState, t: Array, t_next: Array, model: FeynmanKacModel, config: SMCConfig = SMCConfig(),
    target: MoveTarget = MoveTarget(),
) -> tuple[SMCState, StepInfo]:
    """One Feynman-Kac step t -> t_next: move, reweight, resample if ESS < threshold·N, correct
    (``config.corrector`` on ``target``)."""
    n = state.log_weights.shape[0]
    k_move, k_res, k_corr = jax.random.split(key, 3)
    prev = state.particles
    new = jax.vmap(model.transition, in_axes=(0, None, None, 0))(jax.random.split(k_move, n), t, t_next, prev)
    new = _constrain(new, config.sharding)
    log_g = jax.vmap(model.log_potential, in_axes=(None, None, 0, 0))(t, t_next, prev, new)
    lw = state.log_weights + log_g
    # NaN or +inf potentials and non-finite particles are errors; -inf (zero weight) is allowed.
    nonfinite = jnp.any(jnp.isnan(lw) | (lw == jnp.inf)) | ~_positions_finite(new, target)
    log_norm = logsumexp(lw)
    all_zero = log_norm == -jnp.inf
    lw = lw - log_norm
    ess = jnp.exp(log_ess(lw))
    finite = jnp.isfinite(lw)
    spread = jnp.max(jnp.where(finite, lw, -jnp.inf)) - jnp.min(jnp.where(finite, lw, jnp.inf))
    spread = jnp.where(jnp.any(finite), spread, 0.0)

    do_resample = jnp.array(True) if config.ess_threshold >= 1.0 else ess < config.ess_threshold * n
    # a callable is a position-aware resampler (key, weights, n, positions) -> indices, e.g. the
    # Hilbert-ordered probkit.smc.resampling.ordered(); strings name blackjax schemes
    resample_fn = config.resampling if callable(config.resampling) else _resampler(config.resampling)

    def _resample(operand):
        parts, lw_ = operand
        mesh = getattr(config.sharding, "mesh", None)  # replicated on its mesh (no mesh: the partitioner decides)
        rep = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        # Sharded runs: the ancestor indices are computed from replicated weights (N floats
        # all-gathered: cumsum/searchsorted on a sharded axis partitions very badly, 7-100x
        # slower per step), then each device gathers its own slice of idx from an all-gathered
        # copy of the particles (the one unavoidable collective of global resampling).
        w_rep = _constrain(jnp.exp(lw_), rep)
        positions = (_constrain(jax.vmap(target.get)(parts), rep),) if callable(config.resampling) else ()
        idx = _constrain(resample_fn(k_res, w_rep, n, *positions), config.sharding)
        parts = jax.tree.map(lambda a: _constrain(a, rep)[idx], parts)
        return parts, jnp.full_like(lw_, -math.log(n))

    new, lw = jax.lax.cond(do_resample, _resample, lambda op: op, (new, lw))
    new, lw = _constrain(new, config.sharding), _constrain(lw, config.sharding)

    acceptance = jnp.array(jnp.nan, lw.dtype)
    if config.corrector is not None:
        kernel = config.corrector.make(target)
        new, acc = jax.vmap(kernel, in_axes=(0, 0, None))(jax.random.split(k_corr, n), new, t_next)
        new = _constrain(new, config.sharding)
        acceptance = jnp.mean(acc).astype(lw.dtype)
        nonfinite = nonfinite | ~_positions_finite(new, target)

    info = StepInfo(ess, do_resample, spread, log_norm, all_zero, nonfinite, acceptance)
    return SMCState(new, lw, state.log_evidence + log_norm), info


def check_history(info: StepInfo, times: Array, start: int = 0) -> None:
    """Raise ``ValueError`` for the first step flagged ``all_zero`` or ``nonfinite`` (``info``
    holds the steps from ``start`` on of the grid ``times``)."""
    all_zero, nonfinite, ts = np.asarray(info.all_zero), np.asarray(info.nonfinite), np.asarray(times)
    bad = np.flatnonzero(all_zero | nonfinite)
    if bad.size == 0:
        return
    k = start + int(bad[0])
    where = f"step {k} (t = {ts[k]:.6g} -> {ts[k + 1]:.6g})"
    if nonfinite[k - start]:
        raise ValueError(
            f"non-finite values at {where}: a particle coordinate is NaN/inf or a log-potential is "
            "NaN/+inf (check the score / potential functions and the step sizes)"
        )
    raise ValueError(
        f"all particles have zero weight at {where}: every log-potential is -inf, so the "
        "Feynman-Kac target has no mass on the particles (degenerate weights)"
    )


def run_model(
    key: Array, model: FeynmanKacModel, num_particles: int, ts: Array, config: SMCConfig = SMCConfig(),
    nfe_per_step: int = 1, nfe_init: int = 0, target: MoveTarget | None = None,
) -> tuple[WeightedParticles, tuple[Array, Array]]:
    """The un-jitted core of :func:`run_smc`, for samplers that jit their own program: runs the
    scan and returns ``(result, flags)``; pass the flags to :func:`finish`. The particles are
    projected with ``target.position``."""
    target = MoveTarget() if target is None else target
    k_init, k_run = jax.random.split(key)
    state = smc_init(k_init, model, num_particles, config)
    # init flags: [a start position is non-finite, init_log_weight gave NaN/+inf (or all -inf)]
    # (normalised log-weights are NaN exactly in those cases)
    init_bad = jnp.stack([~_positions_finite(state.particles, target), jnp.any(jnp.isnan(state.log_weights))])
    keys = jax.random.split(k_run, ts.shape[0] - 1)

    def body(state, inp):
        k, t, t_next = inp
        return smc_step(k, state, t, t_next, model, config, target)

    state, info = progress_scan(body, state, (keys, ts[:-1], ts[1:]), enabled=config.progress, desc="smc")
    corrector = config.corrector
    nfe = int(nfe_init) + (ts.shape[0] - 1) * (int(nfe_per_step) + (0 if corrector is None else int(corrector.nfe)))
    name = "none" if corrector is None else corrector.name
    out = WeightedParticles(jax.vmap(target.get)(state.particles), state.log_weights, info.ess, info.resampled,
                            state.log_evidence, info.log_weight_spread, nfe, ts, info.acceptance, name)
    return out, (info.all_zero, info.nonfinite, init_bad)


def finish(out: WeightedParticles, flags: tuple, check: bool = True, warn: bool = True) -> WeightedParticles:
    """Raise the engine's after-run errors (non-finite start values, all-zero weights,
    non-finite values) when the flags are concrete (skipped under ``jit`` / ``vmap``), warn
    when the run is degenerate (:func:`warn_if_degenerate`), and return ``out``."""
    if check and not _checks.is_traced(flags):
        if len(flags) > 2:
            init_bad = np.asarray(flags[2])
            if init_bad[0]:
                raise ValueError("non-finite start values: `init` (the draw from M_0 / the prior) returned a "
                                 "NaN/inf particle position")
            if init_bad[1]:
                raise ValueError("`init_log_weight` (log G_0) returned NaN or +inf (or -inf for every "
                                 "particle) on the initial particles; it must be finite or -inf")
        check_history(StepInfo(None, None, None, None, flags[0], flags[1], None), out.times)
    if warn:
        warn_if_degenerate(out)
    return out


#: ``warn_if_degenerate`` fires when min ESS < min(DEGENERATE_ESS, DEGENERATE_FRACTION * N).
DEGENERATE_ESS = 5.0
DEGENERATE_FRACTION = 0.1


def warn_if_degenerate(out: WeightedParticles, stacklevel: int = 4) -> None:
    """One-line ``warnings.warn`` when the weights collapsed onto a handful of particles at
    some step (min ESS < min(5, N/10)): the log-evidence and weighted means are then unreliable.
    Skipped for traced results."""
    if _checks.is_traced(out.ess) or jnp.ndim(out.ess) != 1 or jnp.shape(out.ess)[0] == 0:
        return
    health, n = out.health(), out.num_particles
    k = health["min_ess_step"]
    if k >= 0 and health["min_ess"] < min(DEGENERATE_ESS, DEGENERATE_FRACTION * n):
        ts = np.asarray(out.times)
        warnings.warn(
            f"degenerate SMC run: min ESS {health['min_ess']:.3g} of {n} particles at step {k} (t = {ts[k]:.4g} -> "
            f"{ts[k + 1]:.4g}), too few steps for the weight increments; use more steps (num_steps / ts), "
            "a corrector, more particles or a gentler potential (log_evidence is unreliable)",
            RuntimeWarning, stacklevel=stacklevel)


_scan_jit = filter_jit(run_model)


def run_smc(
    key: Array,
    model: FeynmanKacModel,
    num_particles: int,
    ts: Array,
    *,
    target: MoveTarget | None = None,
    nfe_per_step: int = 1,
    nfe_init: int = 0,
    check: bool = True,
    **options,
) -> WeightedParticles:
    """Run the Feynman-Kac particle system of ``model`` on the decreasing grid ``ts``.

    Compiled once per model: the jit (``equinox.filter_jit``) traces the arrays in ``model``
    (e.g. the leaves of ``jax.tree_util.Partial`` functions) and ``ts``, and treats plain
    Python functions as static, hashed by identity. Reuse one model object (or build it from
    module-level functions and ``Partial``) to call it again without recompiling.

    Args:
      key: PRNG key.
      model: a :class:`FeynmanKacModel`.
      num_particles: N.
      ts: ``(K + 1,)`` strictly decreasing times.
      target: optional :class:`~probkit.smc.correctors.MoveTarget`: the intermediate log
        density / score a ``corrector`` moves on, and the particle's ``position`` (the result
        holds the positions). Model builders return it: ``model, target = fkc.fkc_model(...)``.
      nfe_per_step: score evaluations per particle of one transition + potential (for ``nfe``).
      nfe_init: score evaluations per particle spent by ``init``/``init_log_weight``.
      check: raise ``ValueError`` after the scan if a step had all-zero weights or non-finite
        values (skipped automatically when called under a JAX transformation).
      **options: the engine's options ``resampling``, ``ess_threshold``, ``corrector``,
        ``sharding``, ``progress`` (:class:`SMCConfig`).

    Returns:
      :class:`WeightedParticles` (particles projected by ``target.position``).
    """
    _checks.prng_key(key)
    _checks.positive_int("nfe_per_step", nfe_per_step, minimum=0)
    target = MoveTarget() if target is None else target
    if options.get("corrector") is not None and target.logdensity_fn is None and target.score_fn is None:
        raise ValueError("a `corrector` needs `target=MoveTarget(logdensity_fn)` (or a score_fn for langevin)")
    config = make_config(num_particles, ts, target.logdensity_fn is not None, **options)
    ts = jnp.asarray(ts, dtype=jnp.result_type(float))
    out, flags = _scan_jit(key, model, int(num_particles), ts, config, int(nfe_per_step), int(nfe_init), target)
    return finish(out, flags, check)


def make_config(num_particles, ts, has_logdensity: bool = True, **options) -> SMCConfig:
    """Check the engine's ``options`` (:class:`SMCConfig`; ValueError naming the argument) and
    bundle them. ``has_logdensity=False``: the move target has no log density, so
    Metropolis-adjusted correctors are refused."""
    unknown = sorted(set(options) - set(SMCConfig._fields))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; the engine's options are {SMCConfig._fields}")
    config = SMCConfig(**options)
    _checks.positive_int("num_particles", num_particles)
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 2:
        raise ValueError(f"`ts` must be a 1-D grid with at least 2 times, got shape {jnp.shape(ts)}")
    if not _checks.is_traced(ts):  # values are checked when concrete
        ts_np = np.asarray(ts)
        if not np.all(np.isfinite(ts_np)):
            raise ValueError("`ts` must be finite")
        if not np.all(np.diff(ts_np) < 0):
            raise ValueError("`ts` must be strictly decreasing (generative time runs 1 -> 0)")
    if not callable(config.resampling):
        hilbert = ("hilbert",) + tuple(f"hilbert-{s}" for s in ORDERED_RESAMPLING)
        _checks.choice("resampling", config.resampling, RESAMPLING + hilbert)
    _checks.scalar("ess_threshold", config.ess_threshold, low=0.0, high=1.0)
    if config.sharding is not None and num_particles % (n_dev := len(config.sharding.device_set)):
        raise ValueError(f"`num_particles` ({num_particles}) must be divisible by the {n_dev} devices of `sharding`")
    corrector = config.corrector
    if corrector is not None:
        if not all(hasattr(corrector, a) for a in ("make", "name", "nfe", "adjusted")):
            raise ValueError("`corrector` must be a probkit.smc.correctors.Corrector (e.g. mala, hmc, langevin)")
        if corrector.adjusted and not has_logdensity:
            raise ValueError(f"`corrector` {corrector.name!r} is Metropolis-adjusted and needs a log density "
                             "(logdensity_fn); give the exact one or use probkit.smc.langevin for score-only models")
    resampling = config.resampling
    if isinstance(resampling, str) and resampling.startswith("hilbert"):
        resampling = ordered(resampling.split("-", 1)[1] if "-" in resampling else "systematic")
    return config._replace(resampling=resampling, ess_threshold=float(config.ess_threshold),
                           progress=bool(config.progress))
