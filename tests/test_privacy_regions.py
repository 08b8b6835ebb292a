"""Privacy regions, trade-off curves and GDP conversions against closed forms."""
import jax
import numpy as np
import pytest
from scipy import stats

from probkit.privacy import (
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    claims_tradeoff,
    delta_from_rates,
    eps_delta_tradeoff,
    epsilon_from_rates,
    gaussian_tradeoff,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    gdp_mu_from_rates,
    laplace_tradeoff,
    randomized_response_tradeoff,
    tradeoff_delta,
    tradeoff_epsilon,
)


def test_epsilon_from_rates_values():
    # Symmetric rates, delta -> formula by hand.
    a, b, d = 0.1, 0.2, 1e-5
    want = max(np.log((1 - d - a) / b), np.log((1 - d - b) / a), 0.0)
    np.testing.assert_allclose(epsilon_from_rates(a, b, d), want, rtol=1e-6)
    # Vectorised; a useless attack (a + b >= 1 - delta) gives 0; a perfect attack gives inf.
    out = np.asarray(epsilon_from_rates(np.array([0.5, 0.0, 0.3]), np.array([0.5, 0.1, 0.0]), 1e-3))
    assert out[0] == 0.0 and np.isinf(out[1]) and np.isinf(out[2])


def test_randomized_response_rates_give_eps():
    eps = np.array([0.1, 1.0, 3.0])
    p = np.exp(eps) / (1 + np.exp(eps))
    np.testing.assert_allclose(epsilon_from_rates(1 - p, 1 - p, 1e-12), eps, rtol=1e-4)


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 4.0])
def test_epsilon_from_rates_reproduces_gaussian_delta_curve(mu):
    # Along the Gaussian trade-off curve, the supremum of epsilon_from_rates at delta is the
    # mechanism's eps(delta); equivalently delta(eps) from the curve equals the closed form.
    for eps in [0.0, 0.5, 1.0, 2.0]:
        d_closed = float(gdp_delta(eps, mu))
        d_curve = float(tradeoff_delta(lambda a: gaussian_tradeoff(a, mu), eps))
        np.testing.assert_allclose(d_curve, d_closed, rtol=2e-3, atol=1e-6)
    # 1 - delta - beta cancels catastrophically in float32 when delta << 1 (float32 resolution
    # 6e-8 against delta = 1e-5), so the curve-based sup is taken in float64.
    with jax.enable_x64(True):
        for delta in [1e-5, 1e-3, 1e-1]:
            e_closed = float(gdp_epsilon(delta, mu))
            e_curve = float(tradeoff_epsilon(lambda a: gaussian_tradeoff(a, mu), delta))
            np.testing.assert_allclose(e_curve, e_closed, rtol=1e-4, atol=1e-4)


def test_gdp_delta_against_scipy_and_inverses():
    mu, eps = 1.3, np.array([0.0, 0.4, 1.7, 5.0])
    want = stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
    np.testing.assert_allclose(gdp_delta(eps, mu), want, rtol=1e-4, atol=1e-7)
    d = gdp_delta(1.0, mu)
    np.testing.assert_allclose(gdp_epsilon(d, mu), 1.0, rtol=1e-4)
    np.testing.assert_allclose(gdp_mu(1.0, d), mu, rtol=1e-4)
    assert float(gdp_epsilon(0.9, 0.1)) == 0.0  # delta(0) < 0.9: eps = 0


def test_gaussian_tradeoff_is_optimal_test():
    # beta(alpha) of the threshold test N(0,1) vs N(mu,1) at threshold t: alpha = 1 - Phi(t).
    mu, t = 1.5, np.linspace(-2, 3, 7)
    alpha = stats.norm.sf(t)
    np.testing.assert_allclose(gaussian_tradeoff(alpha, mu), stats.norm.cdf(t - mu), rtol=1e-4, atol=1e-6)


def test_laplace_tradeoff():
    eps, t = 1.2, np.linspace(-3, 4, 9)
    alpha = stats.laplace.sf(t)
    np.testing.assert_allclose(laplace_tradeoff(alpha, eps), stats.laplace.cdf(t - eps), rtol=1e-4, atol=1e-6)
    # Laplace with eps is pure eps-DP: its curve lies above the eps-DP curve and touches it.
    a = np.linspace(0, 1, 1001)
    assert np.all(np.asarray(laplace_tradeoff(a, eps)) >= np.asarray(randomized_response_tradeoff(a, eps)) - 1e-6)
    with jax.enable_x64(True):  # delta = 1e-9 is below float32 resolution of 1 - delta
        np.testing.assert_allclose(tradeoff_epsilon(lambda x: laplace_tradeoff(x, eps), 1e-9), eps, rtol=1e-3)


def test_eps_delta_tradeoff_roundtrip():
    with jax.enable_x64(True):
        np.testing.assert_allclose(tradeoff_epsilon(lambda a: eps_delta_tradeoff(a, 0.7, 1e-4), 1e-4), 0.7, rtol=1e-3)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(fpr=-0.1, fnr=0.1, delta=1e-5), "fpr"),
        (dict(fpr=0.1, fnr=1.2, delta=1e-5), "fnr"),
        (dict(fpr=0.1, fnr=0.1, delta=-1e-3), "delta"),
        (dict(fpr=0.1, fnr=0.1, delta=1.0), "delta"),
    ],
)
def test_epsilon_from_rates_errors(kwargs, name):
    with pytest.raises(ValueError, match=name):
        epsilon_from_rates(**kwargs)


def test_gdp_errors():
    with pytest.raises(ValueError, match="mu"):
        gdp_delta(1.0, 0.0)
    with pytest.raises(ValueError, match="delta"):
        gdp_epsilon(1.5, 1.0)


def test_symmetric_region_flipped_attack():
    # A worse-than-random attack bounds eps as its flip (every guess negated): FPR = FNR = 0.9
    # gives log(0.9 / 0.1), as in privacy-estimates' eps_from_fnr_fpr.
    np.testing.assert_allclose(epsilon_from_rates(0.9, 0.9, 0.0), np.log(9.0), rtol=1e-6)
    a, b, d = 0.7, 0.95, 1e-3
    np.testing.assert_allclose(epsilon_from_rates(a, b, d), epsilon_from_rates(1 - b, 1 - a, d), rtol=1e-6)
    want = max(np.log((1 - d - (1 - b)) / (1 - a)), np.log((1 - d - (1 - a)) / (1 - b)))
    np.testing.assert_allclose(epsilon_from_rates(a, b, d), want, rtol=1e-6)
    assert float(epsilon_from_rates(0.9, 0.9, 0.0, symmetric=False)) == 0.0
    # delta_from_rates is symmetric too and inverts epsilon_from_rates on both halves.
    for fpr, fnr in ((0.05, 0.3), (0.9, 0.8)):
        e = float(epsilon_from_rates(fpr, fnr, 1e-2))
        np.testing.assert_allclose(delta_from_rates(fpr, fnr, e), 1e-2, atol=1e-6)


def test_pure_dp_delta_zero():
    # delta = 0 is pure DP: finite where the maths allows, inf for mu-GDP, refused for gdp_mu.
    np.testing.assert_allclose(epsilon_from_rates(0.1, 0.3, 0.0), np.log(0.7 / 0.1), rtol=1e-6)
    assert np.isinf(float(gdp_epsilon(0.0, 1.0)))
    assert np.isinf(GaussianMechanism(1.0).epsilon(0.0))
    assert LaplaceMechanism(1.3).epsilon(0.0) == pytest.approx(1.3)
    assert RandomizedResponse(0.8).epsilon(0.0) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="delta"):
        gdp_mu(1.0, 0.0)


def test_laplace_epsilon_closed_form_matches_curve():
    with jax.enable_x64(True):
        for d in (1e-3, 0.1, 0.4):
            np.testing.assert_allclose(LaplaceMechanism(1.2).epsilon(d),
                                       float(tradeoff_epsilon(lambda a: laplace_tradeoff(a, 1.2), d)), rtol=1e-6)


def test_claims_tradeoff_closed_form():
    # Intersection of the claims (e1, 0) and (0, d): f(alpha) = max(1 - e^e1 alpha,
    # e^-e1 (1 - alpha), 1 - d - alpha, 0), and its eps at delta' in [0, d] is
    # log(1 + (d - delta') (e^e1 - 1) / d) (the vertex alpha* = d / (e^e1 - 1)).
    e1, d = 1.5, 0.2
    a = np.linspace(0, 1, 101)
    want = np.maximum.reduce([1 - np.exp(e1) * a, np.exp(-e1) * (1 - a), 1 - d - a, np.zeros_like(a)])
    np.testing.assert_allclose(claims_tradeoff(a, [e1, 0.0], [0.0, d]), want, atol=1e-6)
    with jax.enable_x64(True):
        for dp in (0.0, 0.05, 0.1, 0.2):
            got = float(tradeoff_epsilon(lambda x: claims_tradeoff(x, [e1, 0.0], [0.0, d]), dp))
            np.testing.assert_allclose(got, np.log(1 + (d - dp) * np.expm1(e1) / d), atol=2e-3)
    # One claim is its own curve.
    np.testing.assert_allclose(claims_tradeoff(a, [0.7], [1e-3]), eps_delta_tradeoff(a, 0.7, 1e-3), atol=1e-7)
    with pytest.raises(ValueError, match="eps and delta"):
        claims_tradeoff(a, [1.0, 2.0], [0.1])


def test_gdp_mu_from_rates():
    mu, t = 1.3, np.array([-0.5, 0.4, 2.0])
    fpr, fnr = stats.norm.sf(t), stats.norm.cdf(t - mu)
    np.testing.assert_allclose(gdp_mu_from_rates(fpr, fnr), mu, rtol=1e-4)
    np.testing.assert_allclose(gdp_mu_from_rates(1 - fnr, 1 - fpr), mu, rtol=1e-4)  # flipped attack
