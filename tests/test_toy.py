"""Toy 2-D datasets and named exact mixtures (probkit.models.toy)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.models import GaussianMixture
from probkit.models.toy import DATASETS, eight_gaussians_mixture, grid_mixture, make_dataset, random_mixture

N = 20_000


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_shape_and_standardisation(name):
    x = np.asarray(make_dataset(name, jax.random.PRNGKey(11), N))
    assert x.shape == (N, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))
    # Standardised to mean 0 and mean per-coordinate variance 1 by constants measured on 1e6
    # draws. Monte Carlo s.e. of each mean: sd/sqrt(N) <= 1.3/141 ~ 0.009 (the per-coordinate
    # sd is at most ~1.22, two moons' x); of the averaged variance: sqrt((m4 - 1)/N) <= 0.015
    # for these bounded-kurtosis shapes. Tolerances are 5 s.e.
    assert np.all(np.abs(x.mean(0)) < 0.05), x.mean(0)
    assert abs(x.var(0).mean() - 1.0) < 0.075, x.var(0)


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_is_deterministic_and_jittable(name):
    k = jax.random.PRNGKey(3)
    a = make_dataset(name, k, 64)
    b = jax.jit(make_dataset, static_argnums=(0, 2))(name, k, 64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    c = make_dataset(name, jax.random.PRNGKey(4), 64)
    assert not np.allclose(a, c)


def test_checkerboard_support():
    # Raw checkerboard: uniform on the squares where floor(x1) + floor(x2) is even.
    x = np.asarray(make_dataset("checkerboard", jax.random.PRNGKey(0), N, standardise=False))
    assert np.all(np.abs(x) <= 2.0)
    assert np.all((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0)
    # all 8 black squares are populated about equally (1/8 each; 5 s.e. = 5 sqrt(p(1-p)/N))
    cells = (np.floor(x[:, 0]) + 2) * 4 + (np.floor(x[:, 1]) + 2)
    frac = np.bincount(cells.astype(int), minlength=16) / N
    black = frac[frac > 0]
    assert black.size == 8
    assert np.all(np.abs(black - 1 / 8) < 5 * np.sqrt(1 / 8 * 7 / 8 / N))


def test_rings_radii():
    x = np.asarray(make_dataset("rings", jax.random.PRNGKey(1), N, standardise=False))
    r = np.linalg.norm(x, axis=1)
    ring = np.rint(r)
    assert set(np.unique(ring)) == {1.0, 2.0, 3.0, 4.0}
    assert np.abs(r - ring).max() < 0.5  # noise sd 0.08: 6 sd
    frac = np.bincount(ring.astype(int), minlength=5)[1:] / N
    assert np.all(np.abs(frac - 0.25) < 5 * np.sqrt(0.25 * 0.75 / N))


def test_eight_gaussians_dataset_is_the_mixture():
    gm = eight_gaussians_mixture()
    assert isinstance(gm, GaussianMixture) and gm.num_components == 8
    np.testing.assert_allclose(gm.mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(gm.covariance(), np.eye(2), atol=1e-5)  # exactly standardised
    x = make_dataset("eight_gaussians", jax.random.PRNGKey(2), N)
    # Every draw lies near one of the 8 means (component sd 0.2/1.428 = 0.14; 6 sd = 0.84).
    d = jnp.min(jnp.linalg.norm(x[:, None, :] - gm.means[None], axis=-1), axis=1)
    assert float(d.max()) < 0.84
    raw = eight_gaussians_mixture(standardised=False)
    np.testing.assert_allclose(jnp.linalg.norm(raw.means, axis=1), 2.0, rtol=1e-6)


def test_grid_mixture():
    gm = grid_mixture()
    assert gm.num_components == 25 and gm.dim == 2
    np.testing.assert_allclose(np.sort(np.unique(np.asarray(gm.means))), [-2, -1, 0, 1, 2], atol=1e-6)
    np.testing.assert_allclose(gm.mean(), 0.0, atol=1e-6)
    # covariance of a uniform 5x5 grid with spacing 1: var{-2..2} = 2 plus std^2
    np.testing.assert_allclose(gm.covariance(), (2.0 + 0.15**2) * np.eye(2), rtol=1e-5)
    gm3 = grid_mixture(k=3, spacing=2.0, std=0.5, weights=np.arange(1, 10) / 45)
    assert gm3.num_components == 9
    np.testing.assert_allclose(gm3.weights, np.arange(1, 10) / 45, rtol=1e-6)


def test_random_mixture_is_mcgdiff_prior():
    key = jax.random.PRNGKey(0)
    for dim in (8, 5, 80):
        gm = random_mixture(key, 25, dim)
        assert gm.num_components == 25 and gm.dim == dim and gm.is_diag
        np.testing.assert_allclose(gm.covs, 1.0)
        # means (8i, 8j, 8i, 8j, ...) for (i, j) in {-2..2}^2
        expected = np.array([[8 * (i if c % 2 == 0 else j) for c in range(dim)]
                             for i in range(-2, 3) for j in range(-2, 3)], dtype=float)
        np.testing.assert_allclose(gm.means, expected)
        w = np.asarray(gm.weights)
        assert np.all(w > 0) and abs(w.sum() - 1) < 1e-6
    # random weights depend on the key, uniform ones do not
    w1 = random_mixture(jax.random.PRNGKey(1), 25, 8).weights
    w2 = random_mixture(jax.random.PRNGKey(2), 25, 8).weights
    assert not np.allclose(w1, w2)
    np.testing.assert_allclose(random_mixture(key, 25, 8, weights="uniform").weights, 1 / 25)
    # other square sizes: a 3x3 grid
    assert random_mixture(key, 9, 4).num_components == 9


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_dataset("spiral", jax.random.PRNGKey(0), 10), "name"),
        (lambda: make_dataset("rings", jax.random.PRNGKey(0), 0), "n"),
        (lambda: make_dataset("rings", jax.random.PRNGKey(0), 2.5), "n"),
        (lambda: random_mixture(jax.random.PRNGKey(0), 24, 8), "num_components"),
        (lambda: random_mixture(jax.random.PRNGKey(0), 25, 0), "dim"),
        (lambda: random_mixture(jax.random.PRNGKey(0), 25, 8, weights="dirichlet"), "weights"),
        (lambda: random_mixture(jax.random.PRNGKey(0), 25, 8, std=0.0), "std"),
        (lambda: grid_mixture(k=0), "k"),
        (lambda: grid_mixture(spacing=-1.0), "spacing"),
        (lambda: grid_mixture(weights=np.ones(25)), "weights"),
        (lambda: eight_gaussians_mixture(radius=0.0), "radius"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
