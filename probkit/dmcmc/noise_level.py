"""Noise-level estimation: the discretised noise-level grid, the exact conditional p(t | x) and a
learned noise-level classifier for score-only models.

Denoising Langevin Gibbs (Kim & Ye 2023, "Denoising MCMC for Accelerating Diffusion-Based
Generative Models", ICML, arXiv 2209.14593) samples the joint

    pi(x, t) ∝ p_t(x) pi(t),   t in [t_min, t_max],

and needs draws of t | x. probkit puts t on a grid of ``G`` cell midpoints
``t_j = t_min + (j + 1/2) Δ``, ``Δ = (t_max - t_min) / G``, with prior masses
``w_j ∝ pi(t_j) Δ`` (the midpoint rule for pi). On the grid the joint is
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
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

Array = jax.Array

__all__ = [
    "make_t_grid",
    "t_conditional_log_probs",
    "NoiseLevelEstimator",
    "NoiseEstimatorFit",
    "noise_level_features",
    "noise_level_log_probs",
    "train_noise_estimator",
]


# --------------------------------------------------------------------------------------------
# the grid and the exact conditional
def _check_range(t_min: Any, t_max: Any) -> tuple[float, float]:
    for name, v in (("t_min", t_min), ("t_max", t_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"`{name}` must be a finite number, got {v!r}")
    if not 0.0 < t_min < t_max <= 1.0:
        raise ValueError(f"need 0 < `t_min` < `t_max` <= 1, got t_min={t_min}, t_max={t_max}")
    return float(t_min), float(t_max)


def make_t_grid(
    t_min: float, t_max: float, num_t_grid: int = 128, log_prior_t: Callable[[Array], Array] | None = None
) -> tuple[Array, Array]:
    """Cell midpoints ``t_j`` of ``[t_min, t_max]`` and the normalised log prior masses ``log w_j``.

    ``w_j ∝ pi(t_j) Δ`` (midpoint rule); ``log_prior_t`` is an unnormalised ``log pi(t)``
    (vectorised over ``t``), uniform by default.
    """
    t_min, t_max = _check_range(t_min, t_max)
    if isinstance(num_t_grid, bool) or not isinstance(num_t_grid, int) or num_t_grid < 2:
        raise ValueError(f"`num_t_grid` must be an integer >= 2, got {num_t_grid!r}")
    delta = (t_max - t_min) / num_t_grid
    grid = t_min + delta * (jnp.arange(num_t_grid) + 0.5)
    if log_prior_t is None:
        log_w = jnp.zeros_like(grid)
    else:
        log_w = jnp.asarray(log_prior_t(grid), grid.dtype)
        if log_w.shape != grid.shape:
            raise ValueError(f"`log_prior_t` must map a (G,) array of times to (G,), got {log_w.shape}")
        if not np.all(np.isfinite(np.asarray(log_w))):
            raise ValueError("`log_prior_t` must be finite on [t_min, t_max]")
    return grid, log_w - jax.nn.logsumexp(log_w)


def t_conditional_log_probs(
    log_prob_fn: Callable[[Array, Array], Array], x: Array, grid: Array, log_weights: Array
) -> Array:
    """Exact ``log P(t_j | x) = log p_{t_j}(x) + log w_j - logsumexp_i(...)`` for ONE ``x``; shape (G,)."""
    lp = jax.vmap(lambda t: log_prob_fn(x, t))(grid) + log_weights
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
    def t_min(self) -> float:
        d = float(self.grid[1] - self.grid[0])
        return float(self.grid[0]) - 0.5 * d

    @property
    def t_max(self) -> float:
        d = float(self.grid[1] - self.grid[0])
        return float(self.grid[-1]) + 0.5 * d

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
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (m, n) in zip(keys, zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (m, n)) * math.sqrt(1.0 / m), jnp.zeros((n,))))
    # zero last layer: training starts from the uniform classifier
    params[-1] = (jnp.zeros_like(params[-1][0]), jnp.zeros_like(params[-1][1]))
    return params


def train_noise_estimator(
    key: Array,
    process,
    data: ArrayLike,
    *,
    t_min: float,
    t_max: float,
    num_t_grid: int = 128,
    log_prior_t: Callable[[Array], Array] | None = None,
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
    for name, v in (("num_steps", num_steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {v!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"`learning_rate` must be a positive number, got {learning_rate!r}")
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"`hidden` must contain positive widths, got {hidden}")
    grid, log_w = make_t_grid(t_min, t_max, num_t_grid, log_prior_t)
    event_shape = tuple(data.shape[1:])
    dim = int(np.prod(event_shape))
    key_init, key_train = jax.random.split(key)
    params = _init_mlp(key_init, (dim + 1, *hidden, num_t_grid))
    schedule = optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.05)
    opt = optax.adam(schedule)

    def loss_fn(params, key):
        k_idx, k_j, k_x = jax.random.split(key, 3)
        x0 = data[jax.random.randint(k_idx, (batch_size,), 0, data.shape[0])]
        j = jax.random.categorical(k_j, log_w, shape=(batch_size,))
        keys = jax.random.split(k_x, batch_size)
        x = jax.vmap(process.marginal_sample)(keys, x0, grid[j])
        logits = jax.vmap(lambda z: _mlp(params, noise_level_features(z)))(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, j))

    @jax.jit
    def run(params, key):
        def body(carry, k):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, k)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, num_steps))
        return params, losses

    params, losses = run(params, key_train)
    return NoiseEstimatorFit(NoiseLevelEstimator(params, grid, log_w, event_shape), losses)
