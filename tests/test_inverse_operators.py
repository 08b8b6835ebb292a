"""probkit.inverse operators and likelihoods: adjoint tests, Gram structure, input validation."""
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from probkit import inverse
from probkit.diffusion import VP
from probkit.inverse import operators as ops


def _operators():
    rng = np.random.default_rng(0)
    return {
        "mask": ops.mask(rng.random((6, 5)) < 0.4),
        "mask_chw": ops.mask(rng.random((2, 4, 4)) < 0.5),
        "downsample": ops.downsample((8, 6), 2),
        "downsample_chw": ops.downsample((3, 9, 6), 3),
        "blur": ops.blur((7, 8), rng.random((3, 5))),
        "gaussian_blur_chw": ops.gaussian_blur((2, 8, 8), 1.0),
        "dense": ops.dense(rng.normal(size=(4, 12)), in_shape=(3, 4)),
        "function": ops.from_function(lambda x: jnp.cumsum(x)[::2] * 2.0, (7,)),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_adjoint_dot_product(name):
    """<A x, y> = <x, Aᵀ y> for random x, y (float32: relative tolerance 1e-5 of the norms)."""
    op = _operators()[name]
    for seed in range(3):
        kx, ky = jax.random.split(jax.random.PRNGKey(seed))
        x = jax.random.normal(kx, op.in_shape)
        y = jax.random.normal(ky, op.out_shape)
        ax = op.apply(x)
        assert ax.shape == tuple(op.out_shape)
        aty = op.adjoint(y)
        assert aty.shape == tuple(op.in_shape)
        lhs, rhs = jnp.sum(ax * y), jnp.sum(x * aty)
        scale = float(jnp.linalg.norm(ax) * jnp.linalg.norm(y) + jnp.linalg.norm(x) * jnp.linalg.norm(aty))
        assert abs(float(lhs - rhs)) < 1e-5 * scale, (name, float(lhs), float(rhs))


@pytest.mark.parametrize("name", [n for n in _operators() if n != "function"])
def test_gram_structure(name):
    """gram_apply(λ, v) = A Aᵀ v and gram_apply(1, v) = v (U orthogonal)."""
    op = _operators()[name]
    v = jax.random.normal(jax.random.PRNGKey(3), op.out_shape)
    np.testing.assert_allclose(op.gram_apply(op.gram_eigvals, v), op.apply(op.adjoint(v)), atol=1e-5)
    np.testing.assert_allclose(op.gram_apply(jnp.ones_like(op.gram_eigvals), v), v, atol=1e-5)


def test_blur_is_circular_convolution():
    """Direct periodic convolution, computed by np.roll, equals the FFT implementation."""
    rng = np.random.default_rng(1)
    ker = rng.random((3, 3))
    x = rng.normal(size=(6, 7))
    op = ops.blur(x.shape, ker)
    direct = sum(ker[a, b] * np.roll(x, (a - 1, b - 1), axis=(0, 1)) for a in range(3) for b in range(3))
    np.testing.assert_allclose(op.apply(jnp.asarray(x)), direct, atol=1e-5)


def test_operator_validation():
    with pytest.raises(ValueError, match="observed"):
        ops.mask(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="factor"):
        ops.downsample((8, 8), 3)
    with pytest.raises(ValueError, match="kernel"):
        ops.blur((8, 8), np.ones((2, 3)))
    with pytest.raises(ValueError, match="matrix"):
        ops.dense(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="in_shape"):
        ops.downsample((8,), 2)


def test_gaussian_likelihood_validation():
    A = np.ones((2, 3))
    with pytest.raises(ValueError, match="`y`"):
        inverse.gaussian(A, np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="`y`"):
        inverse.gaussian(A, np.array([0.0, np.nan]), 0.1)
    with pytest.raises(ValueError, match="`y`"):
        inverse.gaussian(A, np.array([0.0, np.inf]), 0.1)
    for bad in (0.0, -1.0, np.nan, np.ones(2)):
        with pytest.raises(ValueError, match="noise_std"):
            inverse.gaussian(A, np.zeros(2), bad)
    with pytest.raises(ValueError, match="`y`"):
        inverse.gaussian(ops.downsample((4, 4), 2), np.zeros((4, 4)), 0.1)


def test_numpyro_likelihood_validation():
    fn = lambda x: dist.Normal(x[:2], 0.5)  # noqa: E731
    with pytest.raises(ValueError, match="`y`"):
        inverse.from_numpyro(fn, np.zeros(3), (4,))
    with pytest.raises(ValueError, match="`y`"):
        inverse.from_numpyro(fn, np.array([np.nan, 0.0]), (4,))
    with pytest.raises(ValueError, match="x_shape"):
        inverse.from_numpyro(fn, np.zeros(2), ())


def test_gaussian_likelihood_values():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(3, 5))
    y = rng.normal(size=3)
    lik = inverse.gaussian(A, y, 0.7)
    x = jnp.asarray(rng.normal(size=5))
    ref = dist.Normal(jnp.asarray(A) @ x, 0.7).log_prob(jnp.asarray(y)).sum()
    np.testing.assert_allclose(lik.log_prob(x), ref, rtol=1e-5)
    np.testing.assert_allclose(lik.grad_log_prob(x), jax.grad(lik.log_prob)(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lik.laplacian, -np.sum(A**2) / 0.49, rtol=1e-5)


def test_numpyro_matches_gaussian_and_laplacians():
    """A numpyro Normal likelihood equals the Gaussian one; exact Hessian trace = closed form;
    Hutchinson is unbiased (mean of 400 single-probe estimates within 4 standard errors)."""
    rng = np.random.default_rng(3)
    A = jnp.asarray(rng.normal(size=(3, 4)))
    y = jnp.asarray(rng.normal(size=3))
    proc = VP()
    g = inverse.gaussian(A, y, 0.5)
    n = inverse.from_numpyro(lambda x: dist.Normal(A @ x, 0.5), y, (4,))
    x = jnp.asarray(rng.normal(size=4))
    np.testing.assert_allclose(g.log_prob(x), n.log_prob(x), rtol=1e-5)
    t = jnp.asarray(0.3)
    closed = inverse.tempered_path(g, proc).laplacian(None, x, t)
    exact = inverse.tempered_path(n, proc, laplacian="exact").laplacian(None, x, t)
    np.testing.assert_allclose(exact, closed, rtol=1e-4)
    hutch = inverse.tempered_path(n, proc, laplacian="hutchinson", num_probes=1)
    est = jax.vmap(lambda k: hutch.laplacian(k, x, t))(jax.random.split(jax.random.PRNGKey(0), 400))
    se = float(jnp.std(est)) / 20.0
    assert abs(float(jnp.mean(est)) - float(closed)) < 4 * se + 1e-6


def test_gaussian_path_exact_start():
    """Matheron draws from N(0, vI) l_1 have the closed-form Gaussian mean and covariance, and
    log Z = log N(y; 0, Σ_1 + v A Aᵀ/α²)."""
    rng = np.random.default_rng(4)
    A = rng.normal(size=(2, 3))
    y = rng.normal(size=2)
    proc = VP()
    lik = inverse.gaussian(A, y, 0.3)
    path = inverse.gaussian_path(lik, proc)
    t0, v = jnp.asarray(0.6), 1.0
    xs, log_z = jax.vmap(lambda k: path.init(k, t0, v))(jax.random.split(jax.random.PRNGKey(1), 100_000))
    a = float(proc.alpha(t0))
    r2 = float(proc.sigma(t0)) ** 2 / a**2
    B = A / a
    sigma = 0.09 * np.eye(2) + r2 * A @ A.T
    prec = np.eye(3) / v + B.T @ np.linalg.solve(sigma, B)
    cov = np.linalg.inv(prec)
    mean = cov @ B.T @ np.linalg.solve(sigma, y)
    # MC error of the mean: sqrt(diag cov / 1e5) <= 0.004; of the covariance entries ~ 0.005
    np.testing.assert_allclose(np.mean(xs, 0), mean, atol=0.015)
    np.testing.assert_allclose(np.cov(np.asarray(xs).T), cov, atol=0.02)
    G = sigma + v * B @ B.T
    ref = -0.5 * (y @ np.linalg.solve(G, y) + np.linalg.slogdet(G)[1] + 2 * np.log(2 * np.pi))
    np.testing.assert_allclose(log_z[0], ref, rtol=1e-4)
