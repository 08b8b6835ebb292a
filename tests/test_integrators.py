"""Integrators driven by exact mixture scores: they reach the target, and converge at their order."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probkit
from probkit.diffusion import INTEGRATORS, VP, make_integrator, integrate, time_grid
from probkit.models import GaussianMixture

GRID = {"euler_maruyama": "uniform", "ddpm": "quadratic", "ddim": "quadratic", "heun": "uniform",
        "dpm_solver_2m": "log_snr"}


def _sw(x, y, key, num_projections=256):
    proj = jax.random.normal(key, (num_projections, x.shape[1]))
    proj = proj / jnp.linalg.norm(proj, axis=1, keepdims=True)
    diff = jnp.sort(x @ proj.T, 0) - jnp.sort(y @ proj.T, 0)
    return float(jnp.sqrt(jnp.mean(diff**2)))


@pytest.fixture(scope="module")
def sw_null(request):
    """Null distribution of the sliced-Wasserstein estimate between two exact samples of size n."""
    gm = GaussianMixture(jnp.array([0.3, 0.5, 0.2]), jnp.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]]),
                         jnp.array([[[0.5, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.6]], [[0.2, 0.0], [0.0, 0.2]]]))
    n = 8192
    vals = [_sw(gm.sample(jax.random.PRNGKey(2 * s), n), gm.sample(jax.random.PRNGKey(2 * s + 1), n),
                jax.random.PRNGKey(99)) for s in range(8)]
    return gm, n, float(np.mean(vals)), float(np.std(vals, ddof=1))


@pytest.mark.parametrize("method", INTEGRATORS)
def test_integrator_reaches_mixture_target(method, sw_null):
    """At 200 steps the discretisation bias is below the Monte Carlo error at n = 8192, so the
    sliced Wasserstein distance to an independent exact sample must look like the null's
    (mean + 4 standard deviations), and the moments must match within 6 standard errors."""
    gm, n, null_mean, null_std = sw_null
    proc = VP()
    res = probkit.sample(jax.random.PRNGKey(5), proc, gm.score_fn(proc), (2,), n, 200, method, grid=GRID[method])
    assert res.nfe == 200 * (2 if method == "heun" else 1)
    x = res.samples
    assert bool(jnp.all(jnp.isfinite(x)))
    sw = _sw(x, gm.sample(jax.random.PRNGKey(123), n), jax.random.PRNGKey(99))
    assert sw < null_mean + 4 * null_std, (method, sw, null_mean, null_std)
    cov = np.asarray(gm.covariance())
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(np.asarray(x.mean(0) - gm.mean())), 6 * se_mean)
    se_var = np.diag(cov) * np.sqrt(2.0 / n) * 2  # x2: the mixture's kurtosis exceeds a Gaussian's
    np.testing.assert_array_less(np.abs(np.var(np.asarray(x), 0) - np.diag(cov)), 6 * se_var)


def _moment_error(method, steps, n=100_000):
    """|mean error| + |std error| on a 1-D Gaussian target N(1, 0.3^2), common random numbers."""
    proc = VP()
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0]]), jnp.array([[0.09]]))
    x_init = jax.random.normal(jax.random.PRNGKey(0), (n, 1))
    x = probkit.sample(jax.random.PRNGKey(1), proc, gm.score_fn(proc), (1,), n, steps, method,
                       grid=GRID[method], x_init=x_init).samples
    return abs(float(x.mean()) - 1.0) + abs(float(x.std()) - 0.3)


def test_error_falls_with_steps_and_second_order_is_faster():
    # Monte Carlo standard error of mean + std at n = 1e5: 0.3/sqrt(n) (1 + 1/sqrt 2) ~ 1.6e-3.
    se = 0.3 / np.sqrt(100_000) * (1 + 1 / np.sqrt(2))
    errors = {m: [_moment_error(m, s) for s in (10, 20, 50, 100)] for m in INTEGRATORS}
    for m in ("euler_maruyama", "ddpm", "ddim"):
        e = errors[m]
        assert e[0] > e[1] > e[2] - 2 * se, (m, e)
        assert e[3] < e[0] / 3, (m, e)
    for m in ("heun", "dpm_solver_2m"):
        assert errors[m][0] < errors["euler_maruyama"][0] / 3, errors
        assert errors[m][1] < errors["euler_maruyama"][1] / 2 + 2 * se, errors


def _pathwise_error(method, steps, x_init, reference):
    proc = VP()
    gm = GaussianMixture(jnp.array([0.4, 0.6]), jnp.array([[-1.5, 0.0], [1.0, 1.0]]), jnp.array([[0.3, 0.5], [0.4, 0.2]]))
    integ = make_integrator(method, proc, gm.score_fn(proc))
    ts = time_grid(proc, steps, "log_snr")
    keys = jax.random.split(jax.random.PRNGKey(0), x_init.shape[0])
    x = jax.jit(jax.vmap(lambda k, x: integrate(k, integ, x, ts)))(keys, x_init)
    return float(jnp.mean(jnp.linalg.norm(x - reference, axis=1))) if reference is not None else x


def test_deterministic_solvers_converge_at_their_order():
    """Pathwise error against a 4000-step Heun solution of the same probability-flow ODE:
    halving the step should divide the error by ~4 for Heun and DPM-Solver++(2M), ~2 for DDIM."""
    x_init = jax.random.normal(jax.random.PRNGKey(3), (512, 2))
    ref = _pathwise_error("heun", 4000, x_init, None)
    for method, lo, hi in (("heun", 1.6, 3.5), ("dpm_solver_2m", 1.4, 3.5), ("ddim", 0.6, 1.4)):
        e = [_pathwise_error(method, s, x_init, ref) for s in (20, 40, 80)]
        orders = np.log2(np.array(e[:-1]) / np.array(e[1:]))
        assert np.all(orders > lo) and np.all(orders < hi), (method, e, orders)


def test_bad_sample_arguments():
    proc = VP()
    gm = GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.ones((1, 2)))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="num_steps"):
        probkit.sample(key, proc, gm.score_fn(proc), (2,), 10, 0)
    with pytest.raises(ValueError, match="num_samples"):
        probkit.sample(key, proc, gm.score_fn(proc), (2,), 0, 10)
    with pytest.raises(ValueError, match="method"):
        probkit.sample(key, proc, gm.score_fn(proc), (2,), 10, 10, "rk4")
    with pytest.raises(ValueError, match="x_init"):
        probkit.sample(key, proc, gm.score_fn(proc), (2,), 10, 10, x_init=jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="score_fn"):
        probkit.sample(key, proc, lambda x, t: jnp.zeros(3), (2,), 10, 10)
