r"""Boltzmann densities of particle systems: Lennard-Jones clusters (LJ-13) and the double well (DW-4).

A configuration is ``n`` particles in ``d`` dimensions, stored as ``(n, d)`` or flat ``(n d,)``.
The Boltzmann density at temperature ``T`` is ``p_T(x) ∝ exp(-E(x) / T)``.

**Lennard-Jones (DEM/iDEM form).** The energy used by Akhound-Sadegh et al. 2024 ("Iterated
Denoising Energy Matching", arXiv 2402.06121) and by the Feynman-Kac correctors paper (Skreta et
al. 2025, arXiv 2503.02819, §5.2) is

.. math::

    E(x) = \lambda \sum_{i \ne j} u(d_{ij}) + \frac{c}{2} \sum_i \|x_i - \bar x\|^2,
    \qquad u(r) = \epsilon\Big[\Big(\frac{r_m}{r}\Big)^{12} - 2\Big(\frac{r_m}{r}\Big)^{6}\Big],

with ``epsilon = 1``, ``r_m = 1`` (the pair minimum ``u(r_m) = -epsilon``; sigma = 2^{-1/6} r_m),
``tau = 1`` (temperatures below are in these units), and the sum over **ordered** pairs
``i != j`` with ``energy_factor`` ``λ = 1`` (so the LJ part is twice the usual pair sum; ``λ = 1/2``
gives the plain LJ energy). The harmonic "oscillator" term with ``c = oscillator_scale = 1``
pulls every particle towards the centre of mass ``x̄`` and keeps the cluster from evaporating
at high temperature. **Regularisation** (probkit's, in the spirit of DEM's smoothed/clipped LJ):
below ``r_soft = 0.8 r_m`` the pair term is continued by its tangent line,
``u(r) = u(r_s) + u'(r_s)(r - r_s)``, so the energy and forces stay finite (``C^1``) when
particles overlap — e.g. MCMC started from Gaussian noise. A pair at ``r < 0.8`` costs more than
``2 u(0.8) ≈ 13.8`` (Boltzmann factor ``< e^{-6.9}`` at T = 2 relative to a pair at ``r_m``), so
the change to the densities studied here is negligible; ``soft_core=None`` gives the plain form.
No clipping is applied. Minima: the icosahedral LJ-13 minimum of the plain form
(``energy_factor = 0.5``, no oscillator) is ``-44.326801``; the default DEM form (λ = 1,
``c = 1``) has its minimum at ``-83.089644`` (the oscillator compresses the icosahedron slightly;
``tests/test_boltzmann.py`` checks both by L-BFGS from an icosahedron).

**DW-4** (Köhler, Klein & Noé 2020, "Equivariant Flows", arXiv 2006.02425; the DEM setting):
four particles in 2-D, ``E(x) = (1/τ) Σ_{i<j} [a (d_ij - d0) + b (d_ij - d0)^2 + c (d_ij - d0)^4]``
with ``a = 0, b = -4, c = 0.9, d0 = 4, τ = 1``.

**Centre of mass.** Both energies are invariant under translations, rotations, reflections and
permutations of the particles, so ``exp(-E/T)`` is normalisable only on the centre-of-mass-free
subspace. We sample there, in the **internal coordinates** ``y = H x`` where ``H`` is the
``(n-1) × n`` Helmert matrix (orthonormal rows orthogonal to the all-ones vector):
``x = H^T y`` has zero centre of mass, ``‖x‖ = ‖y‖``, and isotropic noise on ``y`` is
isotropic noise on the CoM-free subspace. Diffusion models, MCMC and FKC all run on ``y``
(``(n - 1) d`` coordinates: 36 for LJ-13, 6 for DW-4), so divergences and log-evidences refer to
the density on that subspace.

**Score networks.** :func:`train_score` fits a noise-prediction network by denoising score
matching on ``y`` with optax, augmenting every minibatch by a random orthogonal matrix (rotation
or reflection, Haar on O(d)) and a random permutation of the particles. Two architectures:

* ``"mlp"`` — :mod:`probkit.models.nets`' residual MLP on the flat ``y`` (symmetry only through
  augmentation);
* ``"egnn"`` — an E(n)-equivariant graph network (Satorras, Hoogeboom & Welling 2021, "E(n)
  Equivariant Graph Neural Networks", arXiv 2102.09844; the coordinate update normalised as in
  Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D", arXiv 2203.17003):
  exactly equivariant to rotations, reflections, translations and permutations.

Both are saved pickle-free as ``.npz`` + ``.json`` (:func:`save_model` / :func:`load_model`);
the shipped LJ-13 model trained at T = 2 loads with :func:`load_pretrained`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks, _io
from probkit.models.score_mlp import dense_init, init_score_mlp, score_mlp_apply, sinusoidal_embedding
from probkit.models.serialization import (FORMAT_NAME, load_pretrained_file, load_score_model, parse_config_process,
                                          process_to_dict, save_score_model)
from probkit.models.training import StaticArg, check_hyper, dsm_train_init, ema_train_step, fit, noised_batch

Array = jax.Array
Params = dict[str, Any]

__all__ = [
    "LennardJones", "DoubleWell", "LJ13", "DW4",
    "helmert", "to_internal", "from_internal", "remove_com",
    "interatomic_distances", "random_orthogonal", "augment",
    "mcmc_sample", "mcmc_refine", "harmonic_init",
    "EGNNConfig", "init_egnn", "egnn_apply", "ScoreModel", "init_model", "eps_apply", "score_fn",
    "dsm_loss", "train_score", "save_model", "load_model", "load_pretrained", "PRETRAINED",
]

PRETRAINED = {"lj13_T2": "lj13_T2"}
# full float32 in the coordinate maps (GPUs default to TF32 matmuls, ~1e-3 relative error)
_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------
def _check_temperature(temperature: Any, name: str = "temperature") -> None:
    if not _checks.is_traced(temperature):
        t = np.asarray(temperature)
        if t.size == 0 or not np.all(np.isfinite(t)) or not np.all(t > 0):
            raise ValueError(f"`{name}` must be positive and finite, got {temperature!r}")


def _as_config(x: Any, n: int, d: int, name: str = "x") -> Array:
    """Reshape ``(..., n, d)`` or ``(..., n d)`` to ``(..., n, d)``; ValueError naming ``name``."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim >= 2 and x.shape[-2:] == (n, d):
        out = x
    elif x.ndim >= 1 and x.shape[-1] == n * d:
        out = x.reshape(*x.shape[:-1], n, d)
    else:
        raise ValueError(
            f"`{name}` must have trailing shape ({n}, {d}) or ({n * d},) for {n} particles in {d}-D "
            f"(wrong number of atoms?), got shape {tuple(x.shape)}"
        )
    if not _checks.is_traced(out) and not bool(jnp.all(jnp.isfinite(out))):
        raise ValueError(f"`{name}` contains non-finite coordinates (NaN or inf)")
    return out


def _pair_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _pair_distances(x: Array) -> Array:
    """``(..., n, d) -> (..., n(n-1)/2)`` distances over pairs i < j."""
    i, j = _pair_index(x.shape[-2])
    diff = x[..., i, :] - x[..., j, :]
    return jnp.sqrt(jnp.sum(diff**2, axis=-1))


# ----------------------------------------------------------------------------------------------
# Systems
# ----------------------------------------------------------------------------------------------
class _System:
    n_particles: int
    spatial_dim: int

    @property
    def dim(self) -> int:
        """Cartesian coordinates ``n d``."""
        return self.n_particles * self.spatial_dim

    @property
    def internal_dim(self) -> int:
        """Centre-of-mass-free coordinates ``(n - 1) d``."""
        return (self.n_particles - 1) * self.spatial_dim

    def _energy(self, x: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def energy(self, x: Any) -> Array:
        """E(x) for configurations of shape ``(..., n, d)`` or ``(..., n d)``; returns shape ``(...)``."""
        return self._energy(_as_config(x, self.n_particles, self.spatial_dim))

    def log_prob(self, x: Any, temperature: Any = 1.0) -> Array:
        """Unnormalised ``-E(x) / T``."""
        _check_temperature(temperature)
        return -self.energy(x) / temperature

    def force(self, x: Any) -> Array:
        """``-∇E(x)`` by autodiff, same shape as ``x`` (the gradient of the summed energies of a
        batch: configurations do not interact)."""
        x = jnp.asarray(x)
        _as_config(x, self.n_particles, self.spatial_dim)  # shape and finiteness, on the concrete input
        return -jax.grad(lambda z: jnp.sum(self.energy(z)))(x)

    def internal_energy(self, y: Any) -> Array:
        """E(H^T y) for internal coordinates ``y`` of shape ``(..., (n-1) d)`` or ``(..., n-1, d)``."""
        return self.energy(from_internal(y, self.n_particles, self.spatial_dim))

    def internal_log_prob(self, temperature: Any = 1.0) -> Callable[[Array], Array]:
        """``y -> -E(H^T y) / T`` for ONE internal configuration (for BlackJAX)."""
        _check_temperature(temperature)
        n, d = self.n_particles, self.spatial_dim

        def logdensity(y: Array) -> Array:
            x = jnp.matmul(jnp.asarray(helmert(n), y.dtype).T, y.reshape(n - 1, d), precision=_HIGHEST)
            return -self._energy(x) / temperature

        return logdensity

    def distances(self, x: Any) -> Array:
        """Interatomic distances ``(..., n(n-1)/2)`` (invariant to rotations, translations, permutations
        up to reordering)."""
        return _pair_distances(_as_config(x, self.n_particles, self.spatial_dim))


@dataclasses.dataclass(frozen=True)
class LennardJones(_System):
    """Lennard-Jones cluster in the DEM/iDEM form (see the module docstring for the formula).

    Attributes:
      n_particles, spatial_dim: 13 and 3 for LJ-13.
      epsilon, r_m: well depth and pair-minimum distance.
      energy_factor: λ multiplying the sum over ordered pairs i != j (1: DEM form; 0.5: plain LJ).
      oscillator_scale: c of the harmonic term (c/2) Σ ‖x_i - x̄‖² (0 disables it).
      soft_core: r_s / r_m below which the pair term is continued linearly (``None``: plain r^-12).
    """

    n_particles: int = 13
    spatial_dim: int = 3
    epsilon: float = 1.0
    r_m: float = 1.0
    energy_factor: float = 1.0
    oscillator_scale: float = 1.0
    soft_core: float | None = 0.8

    def __post_init__(self) -> None:
        _checks.positive_int("n_particles", self.n_particles, minimum=2)
        _checks.positive_int("spatial_dim", self.spatial_dim)
        for name in ("epsilon", "r_m", "energy_factor"):
            _checks.scalar(name, getattr(self, name), low=0.0, low_open=True)
        _checks.scalar("oscillator_scale", self.oscillator_scale, low=0.0)
        if self.soft_core is not None and not (isinstance(self.soft_core, (int, float)) and 0 < self.soft_core < 1):
            raise ValueError(f"`soft_core` must be None or in (0, 1) (a fraction of r_m), got {self.soft_core!r}")

    def pair_energy(self, r: Array) -> Array:
        """u(r) = ε[(r_m/r)^12 - 2(r_m/r)^6], tangent-continued below ``soft_core · r_m``."""
        eps, rm = self.epsilon, self.r_m

        def u(s):
            q6 = (rm / s) ** 6
            return eps * (q6 * q6 - 2.0 * q6)

        if self.soft_core is None:
            return u(r)
        rs = self.soft_core * rm
        u_s = u(rs)
        du_s = eps * (-12.0 * rm**12 / rs**13 + 12.0 * rm**6 / rs**7)
        return jnp.where(r < rs, u_s + du_s * (r - rs), u(jnp.maximum(r, rs)))

    def _energy(self, x: Array) -> Array:
        lj = 2.0 * self.energy_factor * jnp.sum(self.pair_energy(_pair_distances(x)), axis=-1)
        if self.oscillator_scale:
            c = x - jnp.mean(x, axis=-2, keepdims=True)
            lj = lj + 0.5 * self.oscillator_scale * jnp.sum(c**2, axis=(-2, -1))
        return lj


@dataclasses.dataclass(frozen=True)
class DoubleWell(_System):
    """Multi-particle double well (DW-4): ``(1/τ) Σ_{i<j} a(d-d0) + b(d-d0)² + c(d-d0)⁴``."""

    n_particles: int = 4
    spatial_dim: int = 2
    a: float = 0.0
    b: float = -4.0
    c: float = 0.9
    d0: float = 4.0
    tau: float = 1.0

    def __post_init__(self) -> None:
        _checks.positive_int("n_particles", self.n_particles, minimum=2)
        _checks.scalar("tau", self.tau, low=0.0, low_open=True)

    def _energy(self, x: Array) -> Array:
        r = _pair_distances(x) - self.d0
        return jnp.sum(self.a * r + self.b * r**2 + self.c * r**4, axis=-1) / self.tau


LJ13 = LennardJones()
DW4 = DoubleWell()


# ----------------------------------------------------------------------------------------------
# Centre-of-mass-free coordinates and symmetries
# ----------------------------------------------------------------------------------------------
def helmert(n: int) -> np.ndarray:
    """``(n-1, n)`` Helmert matrix: orthonormal rows, each orthogonal to ``(1, ..., 1)``."""
    h = np.zeros((n - 1, n))
    for k in range(1, n):
        h[k - 1, :k] = 1.0 / math.sqrt(k * (k + 1))
        h[k - 1, k] = -k / math.sqrt(k * (k + 1))
    return h


def to_internal(x: Any, n: int, d: int) -> Array:
    """``y = H x``: ``(..., n, d)`` or ``(..., n d)`` -> flat ``(..., (n-1) d)`` (drops the CoM)."""
    xc = _as_config(x, n, d)
    y = jnp.einsum("kn,...nd->...kd", jnp.asarray(helmert(n), xc.dtype), xc, precision=_HIGHEST)
    return y.reshape(*y.shape[:-2], (n - 1) * d)


def from_internal(y: Any, n: int, d: int) -> Array:
    """``x = H^T y``: flat ``(..., (n-1) d)`` or ``(..., n-1, d)`` -> ``(..., n, d)`` with zero CoM."""
    yc = _as_config(y, n - 1, d, name="y")
    return jnp.einsum("kn,...kd->...nd", jnp.asarray(helmert(n), yc.dtype), yc, precision=_HIGHEST)


def remove_com(x: Any, n: int, d: int) -> Array:
    """``x - x̄`` with shape ``(..., n, d)``."""
    xc = _as_config(x, n, d)
    return xc - jnp.mean(xc, axis=-2, keepdims=True)


def interatomic_distances(x: Any, n: int, d: int) -> Array:
    """All ``n(n-1)/2`` pair distances of ``(..., n, d)`` / ``(..., n d)`` configurations."""
    return _pair_distances(_as_config(x, n, d))


def random_orthogonal(key: Array, d: int, dtype=jnp.float32) -> Array:
    """Haar-random ``d × d`` orthogonal matrix (rotation or reflection): QR of a Gaussian with
    the signs of R's diagonal moved into Q (Mezzadri 2007)."""
    a = jax.random.normal(key, (d, d), dtype)
    q, r = jnp.linalg.qr(a)
    return q * jnp.sign(jnp.diag(r))[None, :]


def augment(key: Array, y: Array, n: int, d: int) -> Array:
    """Random rotation/reflection and permutation of ONE internal configuration ``y`` (flat)."""
    k_rot, k_perm = jax.random.split(key)
    x = from_internal(y, n, d)
    x = x[jax.random.permutation(k_perm, n)] @ random_orthogonal(k_rot, d, x.dtype).T
    return to_internal(x, n, d)


# ----------------------------------------------------------------------------------------------
# BlackJAX MCMC on the internal coordinates
# ----------------------------------------------------------------------------------------------
def harmonic_init(key: Array, system: _System, num_chains: int, scale: float = 0.7) -> Array:
    """Random starting configurations (internal coordinates): Gaussian clouds of radius ``scale``
    relaxed by 200 steps of force-clipped gradient descent (removes overlaps)."""
    n, d = system.n_particles, system.spatial_dim
    y = scale * jax.random.normal(key, (num_chains, system.internal_dim))
    grad = jax.vmap(jax.grad(lambda z: system.internal_energy(z)))

    def body(y, _):
        g = grad(y)
        norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
        return y - 1e-3 * g * jnp.minimum(1.0, 50.0 / (norm + 1e-12)), None

    y, _ = jax.lax.scan(body, y, None, length=200)
    return y


class MCMCResult(NamedTuple):
    """``samples``: ``(chains, draws, (n-1) d)`` internal coordinates; ``energies``: ``(chains, draws)``;
    ``acceptance``: mean acceptance of the sampling phase; ``step_size``: the adapted step."""

    samples: Array
    energies: Array
    acceptance: Array
    step_size: float


def _mcmc_alg(system, temperature, step, method, n_leap):
    import blackjax

    logdensity = system.internal_log_prob(temperature)
    if method == "hmc":
        return blackjax.hmc(logdensity, step, jnp.ones(system.internal_dim), n_leap)
    return blackjax.mala(logdensity, step)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _mcmc_init(y0, temperature, system, method, n_leap):
    return jax.vmap(_mcmc_alg(system, temperature, 1.0, method, n_leap).init)(y0)


def _mcmc_steps(alg, state, key, length):
    def one(state, k):
        state, info = alg.step(k, state)
        return state, info.acceptance_rate

    return jax.lax.scan(one, state, jax.random.split(key, length))


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7, 8))
def _mcmc_draws(states, key, step, temperature, system, method, n_leap, thin, num_draws):
    alg = _mcmc_alg(system, temperature, step, method, n_leap)

    def draw(state, k):
        state, acc = _mcmc_steps(alg, state, k, thin)
        return state, (state.position, -state.logdensity * temperature, jnp.mean(acc))

    keys = jax.random.split(key, jax.tree_util.tree_leaves(states)[0].shape[0])
    return jax.vmap(lambda s, k: jax.lax.scan(draw, s, jax.random.split(k, num_draws)))(states, keys)


def mcmc_sample(
    key: Array,
    system: _System,
    temperature: float,
    num_chains: int,
    num_draws: int,
    *,
    thin: int = 10,
    num_warmup: int = 1000,
    method: str = "hmc",
    step_size: float = 0.01,
    num_integration_steps: int = 10,
    target_acceptance: float | None = None,
    init: Array | None = None,
    adapt_rounds: int = 10,
    verbose: bool = False,
) -> MCMCResult:
    """Many vmapped BlackJAX chains (``"hmc"`` or ``"mala"``) on ``exp(-E(H^T y)/T)``.

    Warm-up: ``adapt_rounds`` blocks of ``num_warmup // adapt_rounds`` steps; after each block the
    common step size is multiplied by ``exp(2 (acc - target) / (1 + r/4))`` (round ``r``) (target 0.65 for HMC, 0.57 for
    MALA). Then the step is frozen and ``num_draws * thin`` steps run, keeping every ``thin``-th.
    """
    _check_temperature(temperature)
    if method not in ("hmc", "mala"):
        raise ValueError(f"`method` must be 'hmc' or 'mala', got {method!r}")
    for name, v in (("num_chains", num_chains), ("num_draws", num_draws), ("thin", thin)):
        _checks.positive_int(name, v)
    target = target_acceptance if target_acceptance is not None else (0.65 if method == "hmc" else 0.57)
    k_init, k_warm, k_run = jax.random.split(key, 3)
    y0 = harmonic_init(k_init, system, num_chains) if init is None else jnp.asarray(init)
    if y0.shape != (num_chains, system.internal_dim):
        raise ValueError(f"`init` must have shape ({num_chains}, {system.internal_dim}), got {y0.shape}")

    cfg = (system, method, int(num_integration_steps))
    temp = jnp.asarray(temperature, jnp.float32)
    states = _mcmc_init(y0, temp, *cfg)
    step = float(step_size)
    block = max(1, num_warmup // max(1, adapt_rounds)) if num_warmup > 0 else 0
    for r in range(adapt_rounds if num_warmup > 0 else 0):
        states, (_, _, acc) = _mcmc_draws(states, jax.random.fold_in(k_warm, r), step, temp, *cfg, block, 1)
        step = float(step * math.exp(2.0 / (1.0 + r / 4.0) * (float(jnp.mean(acc)) - target)))
        if verbose:
            print(f"  warm-up round {r}: acceptance {float(jnp.mean(acc)):.3f} -> step {step:.4g}", flush=True)
    _, (ys, energies, acc) = _mcmc_draws(states, k_run, step, temp, *cfg, thin, num_draws)
    return MCMCResult(ys, energies, jnp.mean(acc), step)


def mcmc_refine(
    key: Array,
    system: _System,
    temperature: float,
    samples: Array,
    num_steps: int,
    *,
    log_weights: Array | None = None,
    method: str = "mala",
    step_size: float = 1e-3,
) -> MCMCResult:
    """The exact-energy MCMC corrector at t = 0: resample weighted samples (systematic, by
    ``log_weights``), then ``num_steps`` MCMC steps per particle on ``exp(-E/T)`` (the first half
    adapt the common step size in up to 5 rounds, :func:`mcmc_sample`); the returned ``samples``
    are ``(N, 1, dim)``.

    An SMC sampler's final MCMC move (Del Moral, Doucet and Jasra 2006): when annealing a Boltzmann
    density (Skreta et al. 2025, arXiv 2503.02819, §5.2) the t = 0 target exp(-E/T) is known up
    to a constant, so a kernel leaving it invariant can follow the diffusion sampler; it never
    increases the KL divergence to the target. Local (vibrational) relaxation is fast, while basin
    populations, set by the sampler, relax slowly. ``samples``: ``(N, dim)`` internal coordinates."""
    from blackjax.smc import resampling

    y = jnp.asarray(samples)
    if y.ndim != 2 or y.shape[1] != system.internal_dim:
        raise ValueError(f"`samples` must have shape (N, {system.internal_dim}), got {y.shape}")
    if not _checks.is_traced(y) and not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError("`samples` must be finite")
    steps = _checks.positive_int("num_steps", num_steps, 2)
    k_res, k_run = jax.random.split(key)
    if log_weights is not None:
        lw = jnp.asarray(log_weights)
        if lw.shape != y.shape[:1]:
            raise ValueError(f"`log_weights` must have shape ({y.shape[0]},), got {lw.shape}")
        valid = jnp.all(jnp.isfinite(lw) | (lw == -jnp.inf)) & jnp.any(jnp.isfinite(lw))
        if not _checks.is_traced(lw) and not bool(valid):
            raise ValueError("`log_weights` must be finite or -inf, with at least one finite entry")
        y = y[resampling.systematic(k_res, jax.nn.softmax(lw), y.shape[0])]
    return mcmc_sample(k_run, system, temperature, y.shape[0], 1, thin=steps - steps // 2, num_warmup=steps // 2,
                       method=method, step_size=step_size, init=y, adapt_rounds=min(5, steps // 2))


# ----------------------------------------------------------------------------------------------
# EGNN score network
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EGNNConfig(_io.JsonConfig):
    """Static description of an EGNN noise-prediction network (hashable, JSON-serialisable).

    ``n_particles``, ``spatial_dim``: the system; ``hidden``: width of node/edge features;
    ``depth``: message-passing layers; ``embed_dim``: sinusoidal features of log-SNR(t)/4;
    ``data_std``: scale for the input preconditioning ``c_in`` and the Gaussian skip.
    """

    n_particles: int = 13
    spatial_dim: int = 3
    hidden: int = 64
    depth: int = 4
    embed_dim: int = 32
    data_std: float = 1.0


def init_egnn(key: Array, config: EGNNConfig) -> Params:
    """Parameters (dict pytree) of an EGNN; layer weights stacked along a leading ``depth`` axis."""
    h, e, L = config.hidden, config.embed_dim, config.depth
    ks = jax.random.split(key, 8)
    return {
        "embed": dense_init(ks[0], e + 1, h),
        "edge1": dense_init(ks[1], 2 * h + 2, h, lead=(L,)),
        "edge2": dense_init(ks[2], h, h, lead=(L,)),
        "coord1": dense_init(ks[3], h, h, lead=(L,)),
        "coord2": dense_init(ks[4], h, 1, scale=1e-2, lead=(L,)),
        "node1": dense_init(ks[5], 2 * h, h, lead=(L,)),
        "node2": dense_init(ks[6], h, h, scale=0.1, lead=(L,)),
    }


def _lin(p, x):
    return x @ p["w"] + p["b"]


def egnn_apply(params: Params, config: EGNNConfig, y: Array, t: Array, process) -> Array:
    """Noise prediction ``eps_theta(y, t)`` for ONE internal configuration ``y`` (flat).

    Node features start from an embedding of the noise level (all particles identical), edges
    carry ``‖x_i - x_j‖²`` at the current and at the input layer. Layer ``l``:
    ``m_ij = φ_e(h_i, h_j, ‖x_i-x_j‖², ‖x_i^0-x_j^0‖²)``,
    ``x_i += Σ_j (x_i - x_j)/(‖x_i - x_j‖ + 1) φ_x(m_ij) / (n - 1)``,
    ``h_i += φ_h(h_i, Σ_j m_ij)``. The output is ``σ_t c_in² x + (x_L - x_0)`` mapped back to
    internal coordinates (the first term is the exact noise of data ``N(0, s² I)``).
    """
    n, d = config.n_particles, config.spatial_dim
    t = jnp.asarray(t, jnp.float32)
    a, s = process.alpha(t), process.sigma(t)
    c_in = jax.lax.rsqrt(a**2 * config.data_std**2 + s**2)
    H = jnp.asarray(helmert(n), jnp.float32)
    x0 = c_in * (H.T @ y.reshape(n - 1, d).astype(jnp.float32))
    emb = sinusoidal_embedding(process.log_snr(t) / 4.0, config.embed_dim)
    h = jnp.broadcast_to(jax.nn.silu(_lin(params["embed"], emb)), (n, config.hidden))
    mask = 1.0 - jnp.eye(n)
    d0 = jnp.sum((x0[:, None] - x0[None]) ** 2, -1)
    layers = {k: params[k] for k in ("edge1", "edge2", "coord1", "coord2", "node1", "node2")}

    def layer(carry, p):
        x, h = carry
        diff = x[:, None] - x[None]
        d2 = jnp.sum(diff**2, -1)
        # edge1 on the concatenation [h_i, h_j, d2_ij, d0_ij], computed separably (same weights)
        w, hd = p["edge1"]["w"], h.shape[-1]
        pre = ((h @ w[:hd])[:, None] + (h @ w[hd:2 * hd])[None] + d2[..., None] * w[2 * hd]
               + d0[..., None] * w[2 * hd + 1] + p["edge1"]["b"])
        m = jax.nn.silu(_lin(p["edge2"], jax.nn.silu(pre))) * mask[..., None]
        phi = _lin(p["coord2"], jax.nn.silu(_lin(p["coord1"], m)))[..., 0] * mask
        x = x + jnp.sum(diff / (jnp.sqrt(d2 + 1e-8)[..., None] + 1.0) * phi[..., None], 1) / (n - 1)
        h = h + _lin(p["node2"], jax.nn.silu(_lin(p["node1"], jnp.concatenate([h, jnp.sum(m, 1)], -1))))
        return (x, h), None

    (xl, _), _ = jax.lax.scan(layer, (x0, h), layers)
    out = s * c_in * x0 + (xl - x0)
    return (H @ out).reshape(-1).astype(y.dtype)


# ----------------------------------------------------------------------------------------------
# Unified score model (MLP from probkit.models.nets, or EGNN)
# ----------------------------------------------------------------------------------------------
class ScoreModel(NamedTuple):
    """A trained noise-prediction network on internal coordinates, with its metadata.

    ``arch``: ``"mlp"`` or ``"egnn"``; ``config``: :class:`probkit.models.nets.ScoreMLPConfig`
    or :class:`EGNNConfig`; ``process``: the diffusion process it was trained with;
    ``system``: the energy; ``temperature``: training temperature.
    """

    arch: str
    params: Params
    config: Any
    process: Any
    system: Any
    temperature: float


def init_model(key: Array, arch: str, system: _System, process, data_std: float, **kw) -> tuple[Params, Any]:
    """``(params, config)`` of a fresh ``"mlp"`` (kw: hidden, depth, ...) or ``"egnn"`` network."""
    if arch == "mlp":
        return init_score_mlp(key, system.internal_dim, data_std=data_std, data_mean=0.0, **kw)
    if arch == "egnn":
        cfg = EGNNConfig(system.n_particles, system.spatial_dim, data_std=float(data_std), **kw)
        return init_egnn(key, cfg), cfg
    raise ValueError(f"`arch` must be 'mlp' or 'egnn', got {arch!r}")


def eps_apply(arch: str, config: Any, process, params: Params, y: Array, t: Array) -> Array:
    """Noise prediction for ONE internal configuration."""
    if arch == "mlp":
        return score_mlp_apply(params, config, y, t, process)
    return egnn_apply(params, config, y, t, process)


class _ScoreApply:
    """Hashable callable ``(params, y, t) -> score`` (static config closed over)."""

    def __init__(self, arch: str, config: Any, process):
        self.arch, self.config, self.process = arch, config, process

    def __call__(self, params, y, t):
        return -eps_apply(self.arch, self.config, self.process, params, y, t) / self.process.sigma(t)

    def __hash__(self):
        return hash((self.arch, self.config, self.process))

    def __eq__(self, other):
        return isinstance(other, _ScoreApply) and (self.arch, self.config, self.process) == (
            other.arch, other.config, other.process)


def score_fn(model: ScoreModel) -> Callable[[Array, Array], Array]:
    """``score(y, t) = -eps_theta(y, t) / σ_t`` as ``jax.tree_util.Partial`` (params traced)."""
    return jax.tree_util.Partial(_ScoreApply(model.arch, model.config, model.process), model.params)


def dsm_loss(params: Params, apply: Callable, process, key: Array, y0: Array, t_min: float) -> Array:
    """``mean_i ‖eps_theta(α y0_i + σ eps_i, t_i) - eps_i‖² / D`` with stratified times."""
    t, eps, yt = noised_batch(process, key, y0, t_min)
    pred = jax.vmap(apply, in_axes=(None, 0, 0))(params, yt, t)
    return jnp.mean((pred - eps) ** 2)


def _augmented_step(data: Array, arch: str, config: Any, process: StaticArg, hyper, n: int, d: int):
    proc = process.obj

    def loss(params: Params, key: Array, y0: Array) -> Array:
        k_aug, k_loss = jax.random.split(key)
        y0 = jax.vmap(lambda kk, y: augment(kk, y, n, d))(jax.random.split(k_aug, y0.shape[0]), y0)
        return dsm_loss(params, functools.partial(eps_apply, arch, config, proc), proc, k_loss, y0, hyper.t_min)

    return ema_train_step(loss, hyper.optimizer(), data, hyper.batch_size, hyper.ema_decay)


def train_score(
    key: Array,
    data: Any,
    system: _System,
    process,
    num_steps: int,
    *,
    arch: str = "mlp",
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    ema_decay: float = 0.999,
    temperature: float = 2.0,
    chunk_size: int = 1000,
    callback: Callable[[int, float], None] | None = None,
    **net_kwargs: Any,
) -> tuple[ScoreModel, np.ndarray]:
    """Denoising score matching on internal coordinates ``data`` ``(N, (n-1) d)`` with random
    rotation/reflection + permutation augmentation of every minibatch, in the training loop of
    :func:`probkit.models.nets.train_score_model` (AdamW with warm-up + cosine decay, EMA weights,
    a ``ValueError`` naming the first non-finite step); ``callback(steps_done, mean_chunk_loss)``
    runs after each chunk. Returns ``(model, losses)``."""
    _check_temperature(temperature)
    arr = np.asarray(data, np.float32)
    if arr.ndim != 2 or arr.shape[1] != system.internal_dim:
        raise ValueError(f"`data` must have shape (N, {system.internal_dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`data` contains non-finite values")
    hyper = check_hyper(process, num_steps, batch_size, learning_rate, ema_decay=ema_decay)
    k_init, k_train = jax.random.split(key)
    params, config = init_model(k_init, arch, system, process, float(np.sqrt(np.mean(arr**2))), **net_kwargs)
    static = (arch, config, StaticArg(process), hyper, system.n_particles, system.spatial_dim)
    state, losses = fit(dsm_train_init(params, hyper.optimizer()), jax.random.split(k_train, hyper.num_steps),
                        jnp.asarray(arr), _augmented_step, static, _checks.positive_int("chunk_size", chunk_size),
                        callback=None if callback is None else lambda done, ls, _: callback(done, float(np.mean(ls))))
    return ScoreModel(arch, state.ema_params, config, process, system, float(temperature)), losses


# ----------------------------------------------------------------------------------------------
# Save / load (npz + json, no pickle)
# ----------------------------------------------------------------------------------------------
EGNN_FORMAT = "probkit.egnn"
EGNN_FORMAT_VERSION = 1
_SYSTEMS = {"LennardJones": LennardJones, "DoubleWell": DoubleWell}


def _egnn_template(config: EGNNConfig) -> Params:
    return jax.eval_shape(lambda: init_egnn(jax.random.PRNGKey(0), config))


def save_model(path: str | os.PathLike, model: ScoreModel, *, dtype: str = "float32",
               metadata: dict[str, Any] | None = None) -> tuple[str, str]:
    """Write ``<path>.npz`` + ``<path>.json``. MLPs use :func:`probkit.models.nets.save_score_model`'s
    format (with the system and temperature in its metadata); EGNNs the ``probkit.egnn`` format
    (the same pickle-free files)."""
    meta = {"system": _io.to_record(model.system, _SYSTEMS, "system"), "temperature": model.temperature,
            "coordinates": "helmert_com_free", **(metadata or {})}
    if model.arch == "mlp":
        return save_score_model(path, model.params, model.config, model.process, dtype=dtype, metadata=meta)
    doc = {"config": model.config.to_dict(), "process": process_to_dict(model.process), "metadata": meta}
    return _io.save_params(path, EGNN_FORMAT, EGNN_FORMAT_VERSION, model.params, _egnn_template(model.config), doc,
                           dtype)


def load_model(path: str | os.PathLike) -> ScoreModel:
    """Read a model written by :func:`save_model` (never unpickles; ValueError naming the file on
    bad files)."""
    meta = _io.read_json(path, (FORMAT_NAME, EGNN_FORMAT), EGNN_FORMAT_VERSION)
    if meta["format"] == FORMAT_NAME:
        arch, (params, config, process) = "mlp", load_score_model(path)
    else:
        config, process = parse_config_process(path, meta, EGNNConfig)
        arch, params = "egnn", _io.load_params(path, meta, _egnn_template(config))
    info = meta["metadata"] if isinstance(meta.get("metadata"), dict) else {}
    try:
        system = _io.from_record(info.get("system"), _SYSTEMS, "system")
    except ValueError as e:
        raise ValueError(f"`path` {_io.base_path(path)}.json: {e}") from None
    return ScoreModel(arch, params, config, process, system, float(info.get("temperature", 1.0)))


def load_pretrained(name: str = "lj13_T2") -> ScoreModel:
    """The shipped score model (``"lj13_T2"``: LJ-13 at T = 2, trained by ``benchmarks/train_boltzmann.py``)."""
    if name not in PRETRAINED:
        raise ValueError(f"`name` must be one of {sorted(PRETRAINED)}, got {name!r}")
    return load_pretrained_file(PRETRAINED[name], load_model, f"pretrained model {name!r}",
                                "benchmarks/train_boltzmann.py")
