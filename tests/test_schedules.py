"""Forward processes: internal consistency of alpha, sigma, f, g and the time grids."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.diffusion import EDM, VE, VP, VPCosine, time_grid

PROCESSES = [VP(), VPCosine(), VE(), EDM()]
IDS = ["VP", "VPCosine", "VE", "EDM"]


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
def test_sde_coefficients_match_marginals(proc):
    """f = d log alpha/dt and g^2 = d sigma^2/dt - 2 f sigma^2 (the Gaussian transition's ODEs)."""
    ts = jnp.linspace(0.05, 0.95, 7)
    dlog_alpha = jax.vmap(jax.grad(lambda t: jnp.log(proc.alpha(t))))(ts)
    dsig2 = jax.vmap(jax.grad(lambda t: proc.sigma(t) ** 2))(ts)
    np.testing.assert_allclose(proc.drift_coef(ts), dlog_alpha, rtol=1e-4, atol=1e-5)
    g2 = proc.diffusion(ts) ** 2
    np.testing.assert_allclose(g2, dsig2 - 2 * proc.drift_coef(ts) * proc.sigma(ts) ** 2, rtol=2e-3)


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
def test_marginal_sample_moments(proc):
    n, t = 200_000, 0.4
    x0 = jnp.full((n,), 1.5)
    xt = proc.marginal_sample(jax.random.PRNGKey(1), x0, t)
    a, s = float(proc.alpha(t)), float(proc.sigma(t))
    # standard errors: s/sqrt(n) for the mean, s^2 sqrt(2/n) for the variance; 5 SE tolerance
    assert abs(float(xt.mean()) - 1.5 * a) < 5 * s / np.sqrt(n)
    assert abs(float(xt.var()) - s**2) < 5 * s**2 * np.sqrt(2 / n)


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
@pytest.mark.parametrize("kind", ["uniform", "quadratic", "log_snr", "edm"])
def test_time_grid_monotone_with_endpoints(proc, kind):
    ts = time_grid(proc, 25, kind)
    assert ts.shape == (26,)
    assert float(ts[0]) == 1.0
    np.testing.assert_allclose(float(ts[-1]), proc.t_min, rtol=1e-6)
    assert bool(jnp.all(jnp.diff(ts) < 0))


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
def test_log_snr_grid_is_uniform_in_log_snr(proc):
    ts = time_grid(proc, 20, "log_snr")
    lam = proc.log_snr(ts)
    np.testing.assert_allclose(jnp.diff(lam), jnp.full(20, (lam[-1] - lam[0]) / 20), rtol=2e-3, atol=2e-3)


def test_edm_grid_matches_karras_formula():
    proc = EDM()
    ts = time_grid(proc, 10, "edm")
    i = np.arange(11) / 10
    smax, smin, rho = 80.0, 0.002, 7.0
    sig = (smax ** (1 / rho) + i * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    np.testing.assert_allclose(proc.sigma(ts), sig, rtol=1e-4)


def test_bad_grid_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        time_grid(VP(), 0)
    with pytest.raises(ValueError, match="t_min"):
        time_grid(VP(), 10, t_min=1.0)
    with pytest.raises(ValueError, match="t_max"):
        time_grid(VP(), 10, t_max=1.5)
    with pytest.raises(ValueError, match="kind"):
        time_grid(VP(), 10, "cubic")
    with pytest.raises(ValueError, match="beta_min"):
        VP(beta_min=-1.0)
    with pytest.raises(ValueError, match="sigma_max"):
        VE(sigma_min=1.0, sigma_max=0.5)
