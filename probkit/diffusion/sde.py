"""Reverse-time dynamics of a forward process, from a score function.

In generative time s = 1 - t the reverse SDE is (Anderson 1982; Song et al. 2021)

    dx = [-f(x, t) + g(t)^2 grad log p_t(x)] ds + g(t) dW,

and the probability-flow ODE drops the noise and halves the score term. Both are members of
the family ``dx = [-f + (g^2 + eta^2)/2 * score] ds + eta dW`` (eta = g: SDE, eta = 0: ODE), all
with marginals p_t; this is the proposal family of the Feynman-Kac correctors (Skreta et al.
2025, arXiv 2503.02819).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from probkit.diffusion.schedules import Process

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

__all__ = ["reverse_drift", "euler_maruyama_kernel", "euler_maruyama_step", "ancestral_kernel", "denoise",
           "check_score_output"]


def reverse_drift(process: Process, score_fn: ScoreFn, x: Array, t: ArrayLike, eta: ArrayLike | None = None) -> Array:
    """Drift ``-f(x,t) + (g^2 + eta^2)/2 * score(x,t)`` in generative time; ``eta=None`` means eta = g
    (reverse SDE), ``eta=0`` the probability-flow ODE."""
    g2 = process.diffusion(t) ** 2
    eta2 = g2 if eta is None else jnp.asarray(eta) ** 2
    return -process.drift(x, t) + 0.5 * (g2 + eta2) * score_fn(x, t)


def euler_maruyama_kernel(process: Process, x: Array, t: ArrayLike, h: ArrayLike,
                          eta: ArrayLike | None = None) -> tuple[Array, Array, Array]:
    """The Euler-Maruyama step of ``dx = [-f + (g^2 + eta^2)/2 score] ds + eta dW`` from t to
    t - h as a Gaussian kernel affine in the score, x' ~ N(b + c score, std^2 I):
    ``(b, c, std) = (x - h f(x, t), h (g^2 + eta^2)/2, eta sqrt(h))`` (``eta=None``: eta = g).
    Its log density gives exact importance weights between two scores (e.g. guided / prior)."""
    g = process.diffusion(t)
    eta = g if eta is None else eta
    return x - h * process.drift(x, t), 0.5 * h * (g**2 + eta**2), eta * jnp.sqrt(h)


def euler_maruyama_step(process: Process, x: Array, score: Array, t: ArrayLike, h: ArrayLike, z: Array,
                        eta: ArrayLike | None = None) -> Array:
    """One Euler-Maruyama step (:func:`euler_maruyama_kernel`) with an already evaluated
    ``score`` and standard normal ``z``: ``b + c score + std z``."""
    b, c, std = euler_maruyama_kernel(process, x, t, h, eta)
    return b + c * score + std * z


def ancestral_kernel(process: Process, x: Array, t: ArrayLike, t_next: ArrayLike,
                     eta: ArrayLike) -> tuple[Array, Array, Array]:
    """The DDPM (eta = 1; Ho et al. 2020) / DDIM (Song, Meng & Ermon 2021) step t -> t_next,
    x' = α' x̂0 + sqrt(σ'² - c²) ε̂ + c z with x̂0 = (x + σ² s)/α, ε̂ = -σ s and c² = eta² · Var[x_t' | x_t, x_0],
    as a Gaussian kernel affine in the score: ``(b, c, std)`` with x' = b + c s + std z."""
    a_t, a_n, s_t, s_n = process.alpha(t), process.alpha(t_next), process.sigma(t), process.sigma(t_next)
    c2 = eta**2 * jnp.clip((s_t**2 - (a_t / a_n) ** 2 * s_n**2) * s_n**2 / s_t**2, 0.0)
    return (a_n / a_t) * x, a_n * s_t**2 / a_t - jnp.sqrt(jnp.clip(s_n**2 - c2, 0.0)) * s_t, jnp.sqrt(c2)


def denoise(process: Process, x: Array, score: Array, t: ArrayLike) -> Array:
    """Tweedie's posterior mean E[x_0 | x_t] = (x + sigma_t^2 score) / alpha_t (``score`` evaluated at (x, t))."""
    return (x + process.sigma(t) ** 2 * score) / process.alpha(t)


def output_shape(fn: Callable, *example: Array) -> tuple[int, ...]:
    """Shape of ``fn(*example)`` by abstract evaluation, cached on the structure of ``fn`` (a
    ``Partial``'s function and leaf shapes, or the function object) so repeated calls with new
    arrays of the same shapes do not re-trace ``fn``."""
    leaves, treedef = jax.tree.flatten(fn)
    key = (treedef, tuple((jnp.shape(v), jnp.result_type(v)) if hasattr(v, "dtype") else v for v in leaves),
           tuple((jnp.shape(e), jnp.result_type(e)) for e in example))
    try:
        return _SHAPES[key]
    except (KeyError, TypeError):  # TypeError: an unhashable leaf, no caching
        pass
    out = jax.eval_shape(fn, *(jax.ShapeDtypeStruct(jnp.shape(e), jnp.result_type(e)) for e in example)).shape
    try:
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        _SHAPES[key] = out
    except TypeError:
        pass
    return out


_SHAPES: dict = {}


def check_score_output(score_fn: ScoreFn, example_x: Array, t: float = 0.5) -> None:
    """Abstractly evaluate ``score_fn`` and raise ValueError if its output does not match x."""
    try:
        out = output_shape(score_fn, example_x, jnp.asarray(t, jnp.result_type(float)))
    except (TypeError, ValueError) as e:  # e.g. a matmul against the wrong event size
        raise ValueError(
            f"`score_fn` fails on one particle of event `shape` {tuple(example_x.shape)}; check that `shape` "
            f"matches the score's event shape ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if out != tuple(example_x.shape):
        raise ValueError(
            f"`score_fn` must return an array shaped like one particle of event `shape` {example_x.shape}, "
            f"got {out}; check `shape`, and remember score_fn acts on ONE particle (the library vmaps)"
        )
