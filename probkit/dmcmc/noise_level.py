"""Noise-level estimation: the discretised noise-level grid, the exact conditional p(t | x) and a
learned noise-level classifier for score-only models.

Denoising Langevin Gibbs (Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based
Generative Models", ICML, arXiv 2209.14593) samples the joint

    pi(x, t) ∝ p_t(x) pi(t),   t in the noise range [lo, hi],

and needs draws of t | x. probkit puts t on a grid of ``G`` cell midpoints
``t_j = lo + (j + 1/2) Δ``, ``Δ = (hi - lo) / G``, with prior masses ``w_j ∝ pi(t_j) Δ`` (the
midpoint rule for pi; :class:`NoiseGrid`). On the grid the joint is
``pi(x, t_j) ∝ p_{t_j}(x) w_j`` and the Gibbs conditional is the exact categorical

    P(t_j | x) = p_{t_j}(x) w_j / sum_i p_{t_i}(x) w_i                      (1)

(:func:`t_conditional_log_probs`). The chain is then an exact Gibbs sampler of the discretised
joint, whose t-marginal is ``w`` itself (``∫ p_t(x) dx = 1``); ``P(t_j | x)`` approximates the
continuous conditional's mass on cell ``j`` to O(Δ²).

When ``log p_t`` is not available (score networks), (1) cannot be evaluated. probkit then learns
it: :func:`train_noise_estimator` fits a small MLP classifier over the same grid by cross-entropy
on pairs ``(x, j)`` with ``j ~ w`` and ``x = alpha_{t_j} x_0 + sigma_{t_j} eps``, ``x_0`` from the
data. These pairs are draws of the discretised joint, so the minimiser of the expected
cross-entropy is exactly (1): the learned move is the exact Gibbs move up to the classifier's
approximation error. That error is NOT corrected (a Metropolis correction would need
``p_t(x)``), so with a learned estimator the chain's stationary law is only approximately
pi(x, t). Because any ``(x, t)`` with ``x ~ p_t`` denoises to ``p_0`` whatever the law of ``t``, an
error in the t-move mostly changes *where* in noise level the chain sits, not the target of the
denoised samples; an error in the x-move (``ula`` is unadjusted) does change it. Kim & Ye also
use a trained noise-level network for the t-update; the classifier over the grid is probkit's
choice because its population optimum is the exact grid conditional (a Gaussian regression on
``t`` would impose a unimodal conditional).

The MLP is written in plain JAX (a list of ``(W, b)`` pairs, SiLU activations) so that the
estimator is a pytree with no framework dependency; training uses optax (Adam with cosine decay).
Its input is scale-free: ``[x / rms(x), log mean(x²)]``, since the noise level is mostly read off
the overall scale of ``x`` (essential for VE processes whose sigma spans decades).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from probkit import _checks

Array = jax.Array

__all__ = ["NoiseGrid", "t_conditional_log_probs", "NoiseLevelEstimator", "NoiseEstimatorFit", "noise_level_features",
           "noise_level_log_probs", "train_noise_estimator"]


# --------------------------------------------------------------------------------------------
# the grid and the exact conditional
class NoiseGrid(NamedTuple):
    """The noise levels of DLG's t-move: ``num_levels`` cell midpoints of ``noise_range = (lo, hi)``
    with prior masses ``w_j ∝ pi(t_j) Δ``; ``log_prior`` is an unnormalised ``log pi(t)``
    (vectorised over t), uniform by default."""

    noise_range: tuple[float, float] = (0.02, 0.5)
    num_levels: int = 128
    log_prior: Callable[[Array], Array] | None = None

    def nodes(self) -> tuple[Array, Array]:
        """The grid ``t_j`` ``(G,)`` and the normalised log prior masses ``log w_j`` (validated)."""
        try:
            lo, hi = (float(v) for v in self.noise_range)
        except (TypeError, ValueError):
            raise ValueError(f"`noise_range` must be a pair (lo, hi), got {self.noise_range!r}") from None
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"`noise_range` must satisfy 0 < lo < hi <= 1, got {self.noise_range!r}")
        g = _checks.positive_int("num_levels", self.num_levels, 2)
        grid = lo + (hi - lo) / g * (jnp.arange(g) + 0.5)
        log_w = jnp.zeros_like(grid) if self.log_prior is None else jnp.asarray(self.log_prior(grid), grid.dtype)
        if log_w.shape != grid.shape:
            raise ValueError(f"`log_prior` must map a (G,) array of noise levels to (G,), got {log_w.shape}")
        if not _checks.is_traced(log_w) and not np.all(np.isfinite(np.asarray(log_w))):
            raise ValueError("`log_prior` must be finite on the noise range")
        return grid, log_w - jax.nn.logsumexp(log_w)


def t_conditional_log_probs(
    logdensity_fn: Callable[[Array, Array], Array], x: Array, grid: Array, log_weights: Array
) -> Array:
    """Exact ``log P(t_j | x) = log p_{t_j}(x) + log w_j - logsumexp_i(...)`` for ONE ``x``; shape (G,)."""
    lp = jax.vmap(lambda t: logdensity_fn(x, t))(grid) + log_weights
    return lp - jax.nn.logsumexp(lp)


# --------------------------------------------------------------------------------------------
# the learned estimator
class NoiseLevelEstimator(NamedTuple):
    """A trained noise-level classifier over the grid ``grid`` (prior masses ``exp(log_weights)``).

    ``params`` is a list of ``(W, b)`` layers; the last layer has ``G`` outputs (logits).
    """

    params: list
    grid: Array
    log_weights: Array
    event_shape: tuple

    @property
    def noise_range(self) -> tuple[float, float]:
        """``(lo, hi)`` of the grid it was trained on."""
        half = 0.5 * float(self.grid[1] - self.grid[0])
        return float(self.grid[0]) - half, float(self.grid[-1]) + half

    def log_probs(self, x: Array) -> Array:
        """Normalised ``log q(t_j | x)`` for ONE ``x`` of ``event_shape``; shape (G,)."""
        return noise_level_log_probs(self, x)


class NoiseEstimatorFit(NamedTuple):
    """Output of :func:`train_noise_estimator`: the estimator and the per-step training loss."""

    estimator: NoiseLevelEstimator
    losses: Array


def noise_level_features(x: Array) -> Array:
    """Scale-free input ``[x / rms(x), log mean(x²)]`` of ONE particle (flattened)."""
    v = jnp.ravel(x)
    ms = jnp.mean(v**2) + 1e-12
    return jnp.concatenate([v * jax.lax.rsqrt(ms), jnp.log(ms)[None]])


def _mlp(params: list, h: Array) -> Array:
    for w, b in params[:-1]:
        h = jax.nn.silu(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def noise_level_log_probs(estimator: NoiseLevelEstimator, x: Array) -> Array:
    """Normalised classifier log-probabilities ``log q(t_j | x)`` for ONE ``x``; shape (G,)."""
    return jax.nn.log_softmax(_mlp(estimator.params, noise_level_features(x)))


def _init_mlp(key: Array, sizes: Sequence[int]) -> list:
    keys = jax.random.split(key, len(sizes) - 1)
    params = [(jax.random.normal(k, (m, n)) * math.sqrt(1.0 / m), jnp.zeros((n,)))
              for k, m, n in zip(keys, sizes[:-1], sizes[1:])]
    # zero last layer: training starts from the uniform classifier
    params[-1] = (jnp.zeros_like(params[-1][0]), jnp.zeros_like(params[-1][1]))
    return params


def train_noise_estimator(
    key: Array,
    process,
    data: ArrayLike,
    noise_grid: NoiseGrid = NoiseGrid(),
    *,
    hidden: Sequence[int] = (256, 256),
    num_steps: int = 3000,
    batch_size: int = 512,
    learning_rate: float = 2e-3,
) -> NoiseEstimatorFit:
    """Train a noise-level classifier ``q(t_j | x)`` by cross-entropy (optax Adam, cosine decay).

    Pairs are fresh draws of the discretised joint: ``j ~ w``, ``x_0`` uniform from ``data``
    (shape ``(n, *event_shape)``), ``x = process.marginal_sample(key, x_0, t_j)``. The population
    minimiser is the exact conditional (1) of the module docstring. The whole loop is one jitted
    ``lax.scan``.
    """
    data = jnp.asarray(data)
    if data.ndim < 2 or data.shape[0] < 1:
        raise ValueError(f"`data` must be shaped (n, *event_shape) with n >= 1, got {data.shape}")
    if not bool(jnp.all(jnp.isfinite(data))):
        raise ValueError("`data` must be finite")
    num_steps, batch_size = _checks.positive_int("num_steps", num_steps), _checks.positive_int("batch_size", batch_size)
    _checks.scalar("learning_rate", learning_rate, low=0.0, low_open=True)
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"`hidden` must contain positive widths, got {hidden}")
    grid, log_w = noise_grid.nodes()
    event_shape = tuple(data.shape[1:])
    dim = int(np.prod(event_shape))
    key_init, key_train = jax.random.split(key)
    params = _init_mlp(key_init, (dim + 1, *hidden, grid.shape[0]))
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.05))

    def loss_fn(params, key):
        k_idx, k_j, k_x = jax.random.split(key, 3)
        x0 = data[jax.random.randint(k_idx, (batch_size,), 0, data.shape[0])]
        j = jax.random.categorical(k_j, log_w, shape=(batch_size,))
        keys = jax.random.split(k_x, batch_size)
        x = jax.vmap(process.marginal_sample)(keys, x0, grid[j])
        logits = jax.vmap(lambda z: _mlp(params, noise_level_features(z)))(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, j))

    def body(carry, k):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, k)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    run = jax.jit(lambda p, k: jax.lax.scan(body, (p, opt.init(p)), jax.random.split(k, num_steps)))
    (params, _), losses = run(params, key_train)
    return NoiseEstimatorFit(NoiseLevelEstimator(params, grid, log_w, event_shape), losses)
