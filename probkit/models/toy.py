"""Toy data: 2-D datasets as pure JAX samplers and named exact Gaussian mixtures.

The 2-D datasets are the usual benchmarks of density estimation and diffusion papers (the
FFJORD set, Grathwohl et al. 2019, arXiv 1810.01367, plus scikit-learn's two moons), each
shifted and scaled by fixed constants so that its mean is about 0 and its per-coordinate
variance about 1 (constants measured once on 10^6 draws; see ``_STANDARDISE``).

The mixtures are exact targets (:class:`probkit.models.GaussianMixture`) for tests and
demos, including the 25-component prior of the MCGdiff benchmark (Cardoso, Janati El
Idrissi, Le Corff, Moulines 2023, "Monte Carlo guided Diffusion for Bayesian linear inverse
problems", arXiv 2308.07983).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from probkit import _checks
from probkit.models.gmm import GaussianMixture

Array = jax.Array

__all__ = ["DATASETS", "make_dataset", "eight_gaussians_mixture", "grid_mixture", "random_mixture"]


# --- raw generators (unstandardised) ---------------------------------------------------
def _two_moons(key: Array, n: int) -> Array:
    # Two interleaved half circles (as sklearn.datasets.make_moons), Gaussian noise 0.1.
    k_side, k_ang, k_noise = jax.random.split(key, 3)
    upper = jax.random.bernoulli(k_side, 0.5, (n,))
    ang = jnp.pi * jax.random.uniform(k_ang, (n,))
    x = jnp.where(upper, jnp.cos(ang), 1.0 - jnp.cos(ang))
    y = jnp.where(upper, jnp.sin(ang), 0.5 - jnp.sin(ang))
    return jnp.stack([x, y], -1) + 0.1 * jax.random.normal(k_noise, (n, 2))


def _checkerboard(key: Array, n: int) -> Array:
    # Uniform on the 8 "black" unit squares of a 4x4 board on [-2, 2]^2.
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.randint(k3, (n,), 0, 2)
    x2 = x2 + jnp.mod(jnp.floor(x1), 2.0)
    return jnp.stack([x1, x2], -1)


def _swiss_roll(key: Array, n: int) -> Array:
    # 2-D swiss roll (theta cos theta, theta sin theta), theta = 1.5 pi (1 + 2u), noise 0.5.
    k_t, k_noise = jax.random.split(key)
    theta = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,)))
    pts = jnp.stack([theta * jnp.cos(theta), theta * jnp.sin(theta)], -1)
    return pts + 0.5 * jax.random.normal(k_noise, (n, 2))


def _rings(key: Array, n: int) -> Array:
    # Four concentric circles of radii 1, 2, 3, 4 (equal mass), radial noise 0.08.
    k_r, k_a, k_noise = jax.random.split(key, 3)
    radius = 1.0 + jax.random.randint(k_r, (n,), 0, 4).astype(jnp.float32)
    ang = 2 * jnp.pi * jax.random.uniform(k_a, (n,))
    pts = radius[:, None] * jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)
    return pts + 0.08 * jax.random.normal(k_noise, (n, 2))


def _pinwheel(key: Array, n: int) -> Array:
    # Five spiral arms (FFJORD): radial std 0.3, tangential std 0.1, rate 0.25.
    k_lab, k_f = jax.random.split(key)
    num_arms, rate = 5, 0.25
    rads = jnp.linspace(0.0, 2 * jnp.pi, num_arms, endpoint=False)
    labels = jax.random.randint(k_lab, (n,), 0, num_arms)
    feats = jax.random.normal(k_f, (n, 2)) * jnp.array([0.3, 0.1]) + jnp.array([1.0, 0.0])
    ang = rads[labels] + rate * jnp.exp(feats[:, 0])
    c, s = jnp.cos(ang), jnp.sin(ang)
    rot = jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)  # (n, 2, 2)
    return 2.0 * jnp.einsum("nij,nj->ni", rot, feats)


def _eight_gaussians_raw(key: Array, n: int) -> Array:
    return eight_gaussians_mixture(standardised=False).sample(key, n)


# Generator, shift and isotropic scale per dataset: x_std = (x - shift) / scale, with scale^2 =
# the mean of the two coordinate variances (measured on 10^6 draws; exact where noted).
_GENERATORS: dict[str, tuple[Callable[[Array, int], Array], tuple[float, float], float]] = {
    "two_moons": (_two_moons, (0.5, 0.25), 0.7120),
    "checkerboard": (_checkerboard, (0.0, 0.0), 2.0 / math.sqrt(3.0)),  # exact: both marginals are U(-2, 2)
    "swiss_roll": (_swiss_roll, (2.0007, 0.2141), 6.8039),
    "rings": (_rings, (0.0, 0.0), math.sqrt((1 + 4 + 9 + 16) / 8 + 0.0064)),  # exact: E r^2 / 2 + noise^2
    "eight_gaussians": (_eight_gaussians_raw, (0.0, 0.0), math.sqrt(2.0 + 0.04)),  # exact: r^2/2 + s^2, r=2, s=0.2
    "pinwheel": (_pinwheel, (0.0, 0.0), 1.4835),
}

DATASETS = tuple(_GENERATORS)


def make_dataset(name: str, key: Array, n: int, *, standardise: bool = True) -> Array:
    """``n`` draws, shape ``(n, 2)``, of the 2-D toy dataset ``name`` (one of :data:`DATASETS`).

    With ``standardise=True`` (default) the data are shifted and scaled by fixed constants to
    mean about 0 and per-coordinate variance about 1 (the same constants for every call, so
    the distribution is fixed). Pure JAX: jit it with ``n`` static.
    """
    _checks.positive_int("n", n)
    generator, shift, scale = _GENERATORS[_checks.choice("name", name, DATASETS)]
    x = generator(key, int(n)).astype(jnp.float32)
    if standardise:
        x = (x - jnp.asarray(shift, jnp.float32)) / scale
    return x


# --- exact mixtures ----------------------------------------------------------------------
def eight_gaussians_mixture(radius: float = 2.0, std: float = 0.2, *, standardised: bool = True):
    """Eight equally weighted isotropic Gaussians with means on a circle of ``radius``.

    Means ``radius (cos(k pi/4), sin(k pi/4))``, k = 0..7, covariance ``std^2 I``. With
    ``standardised=True`` the whole mixture is divided by ``sqrt(radius^2/2 + std^2)`` so that
    each coordinate has unit variance (the distribution of ``make_dataset("eight_gaussians")``
    with default arguments).
    """
    if not (radius > 0 and std > 0):
        raise ValueError(f"`radius` and `std` must be positive, got {radius!r}, {std!r}")
    ang = jnp.arange(8) * (jnp.pi / 4)
    means = radius * jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)
    var = std**2
    if standardised:
        scale = math.sqrt(radius**2 / 2 + std**2)
        means, var = means / scale, var / scale**2
    return GaussianMixture(jnp.full(8, 1 / 8), means, jnp.full((8, 2), var))


def grid_mixture(k: int = 5, spacing: float = 1.0, std: float = 0.15, weights=None):
    """A ``k x k`` grid of isotropic 2-D Gaussians (25 components by default).

    Means ``spacing * (i - (k-1)/2, j - (k-1)/2)`` for i, j = 0..k-1 (centred at the origin;
    with the defaults they span [-2, 2]^2), covariance ``std^2 I``, ``weights`` uniform unless
    given (shape ``(k*k,)``, row-major in (i, j)).
    """
    k = _checks.positive_int("k", k)
    if not (spacing > 0 and std > 0):
        raise ValueError(f"`spacing` and `std` must be positive, got {spacing!r}, {std!r}")
    c = spacing * (jnp.arange(k) - (k - 1) / 2)
    means = jnp.stack(jnp.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    w = jnp.full(k * k, 1.0 / (k * k)) if weights is None else jnp.asarray(weights)
    return GaussianMixture(w, means, jnp.full((k * k, 2), std**2))


def random_mixture(
    key: Array, num_components: int = 25, dim: int = 8, *, spacing: float = 8.0, std: float = 1.0,
    weights: str = "random",
):
    """The MCGdiff Gaussian-mixture prior (Cardoso et al. 2023, arXiv 2308.07983, Sec. 4.1).

    ``num_components = m^2`` components indexed by a grid ``(i, j)``, i, j in
    ``{-(m-1)/2, ..., (m-1)/2}`` (``{-2, ..., 2}`` for the default 25), with mean
    ``(s i, s j, s i, s j, ...)`` in R^dim (the 2-D grid point repeated along all coordinates;
    the last coordinate is ``s i`` when ``dim`` is odd), ``s = spacing`` = 8, and covariance
    ``std^2 I`` (unit in the paper). ``weights="random"``: unnormalised weights i.i.d.
    Uniform(0, 1) from ``key``, then normalised (the paper's random weights);
    ``weights="uniform"``: equal weights (``key`` unused). Covariances are stored diagonal
    ``(K, dim)`` so that ``dim`` = 800 stays cheap.

    Neighbouring means are ``spacing * sqrt(dim/2)`` apart, so the components are very well
    separated: the difficulty of the benchmark lies in the posterior weights.
    """
    num_components = _checks.positive_int("num_components", num_components)
    m = math.isqrt(num_components)
    if m * m != num_components:
        raise ValueError(f"`num_components` must be a perfect square (a grid m x m), got {num_components}")
    dim = _checks.positive_int("dim", dim)
    if not (spacing > 0 and std > 0):
        raise ValueError(f"`spacing` and `std` must be positive, got {spacing!r}, {std!r}")
    _checks.choice("weights", weights, ("random", "uniform"))
    c = jnp.arange(m) - (m - 1) / 2
    grid = jnp.stack(jnp.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)  # (K, 2) = (i, j)
    means = spacing * grid[:, jnp.arange(dim) % 2]  # (s i, s j, s i, s j, ...)
    if weights == "random":
        w = jax.random.uniform(key, (num_components,))
        w = w / jnp.sum(w)
    else:
        w = jnp.full(num_components, 1.0 / num_components)
    return GaussianMixture(w, means, jnp.full((num_components, dim), std**2))
