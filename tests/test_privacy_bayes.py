"""Posterior of eps: integration vs Monte Carlo vs direct quadrature, coverage, errors, GDP/NUTS."""
import jax
import numpy as np
import pytest
from scipy import integrate, stats

from probkit.privacy import (
    GaussianMechanism,
    best_threshold,
    clopper_pearson_epsilon,
    epsilon_from_rates,
    epsilon_posterior,
    epsilon_posterior_cdf,
    gdp_posterior,
    rate_posteriors,
    simulate_counts,
    simulate_scores,
)

# (fp, n_negative, fn, n_positive, delta): a zero count, a small audit, a large one, and an attack
# on the "upper" side of the diagonal (fpr < fnr, small fp).
CASES = [(0, 200, 150, 200, 1e-3), (12, 500, 230, 500, 1e-5), (4_000, 100_000, 31_000, 100_000, 1e-5),
         (3, 1000, 960, 1000, 1e-2), (180, 200, 175, 200, 0.0)]  # last: worse than random, pure DP


@pytest.mark.parametrize("case", CASES)
def test_integration_cdf_matches_direct_quadrature(case):
    # Independent reference: P(eps <= e) = int f_alpha(a) S_beta(thr_e(a)) da by adaptive
    # quadrature with exact scipy Beta functions (no probit table, no midpoint rule). The
    # midpoint rule in u has error <= 1/num_grid for a monotone integrand; the table ~1e-6.
    fp, nn, fn, npos, delta = case
    (a1, b1), (a2, b2) = rate_posteriors(fp, nn, fn, npos)
    post = epsilon_posterior(fp, nn, fn, npos, delta, num_samples=16)
    es = post.quantile([0.05, 0.3, 0.5, 0.8, 0.97])

    def direct(e):
        def integrand(u):
            a = stats.beta.ppf(u, a1, b1)
            lower = max((1 - delta - a) * np.exp(-e), 1 - delta - np.exp(e) * a)
            upper = min(1 - (a - delta) * np.exp(-e), delta + np.exp(e) * (1 - a))  # flipped attack
            clip = lambda x: min(max(x, 0.0), 1.0)  # noqa: E731
            return max(stats.beta.sf(clip(lower), a2, b2) - stats.beta.sf(clip(upper), a2, b2), 0.0)

        return integrate.quad(integrand, 0, 1, limit=200, epsabs=1e-7)[0]

    want = np.array([direct(e) for e in es])
    got = epsilon_posterior_cdf(es, fp, nn, fn, npos, delta)
    np.testing.assert_allclose(got, want, atol=1.0 / 8192 + 1e-6)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_monte_carlo_agrees_with_integration(case, seed):
    fp, nn, fn, npos, delta = case
    n = 200_000
    integ = epsilon_posterior(fp, nn, fn, npos, delta, num_samples=16)
    mc = epsilon_posterior(fp, nn, fn, npos, delta, method="monte_carlo", num_samples=n, key=jax.random.PRNGKey(seed))
    es = integ.quantile(np.linspace(0.02, 0.98, 13))
    f_int = integ.cdf(es)
    f_mc = mc.cdf(es)
    # Empirical CDF at a fixed point: sd = sqrt(F(1-F)/n) <= 1.1e-3; 5 sd plus the integration
    # error bound (1/num_grid) and float32 rounding of the MC draws.
    tol = 5 * np.sqrt(f_int * (1 - f_int) / n) + 1.0 / 4096 + 1e-4
    assert np.all(np.abs(f_mc - f_int) <= tol), (f_mc, f_int)
    # Means: MC standard error = posterior sd / sqrt(n).
    sd = float(np.std(np.asarray(mc.samples, np.float64)))
    assert abs(mc.mean - integ.mean) <= 5 * sd / np.sqrt(n) + 1e-3 * sd


def test_summaries_are_consistent():
    post = epsilon_posterior(12, 500, 230, 500, 1e-5, num_samples=5_000, key=jax.random.PRNGKey(3))
    lo, hi = post.interval(0.9)
    np.testing.assert_allclose(post.cdf(np.array([lo, hi])), [0.05, 0.95], atol=2e-3)
    hlo, hhi = post.hpd_interval(0.9)
    assert hhi - hlo <= hi - lo + 1e-9
    np.testing.assert_allclose(post.cdf(hhi) - post.cdf(hlo), 0.9, atol=2e-3)
    np.testing.assert_allclose(post.prob_exceeds(post.quantile(0.8)), 0.2, atol=2e-3)
    assert lo < post.mode < hi and lo < post.mean < hi
    # Inverse-CDF samples follow the tabulated CDF (KS test at a generous level).
    assert stats.kstest(np.asarray(post.samples), lambda x: post.cdf(x)).pvalue > 1e-3
    # Posterior concentrates on the plug-in value as the audit grows.
    big = epsilon_posterior(1200, 50_000, 23_000, 50_000, 1e-5, num_samples=16)
    point = float(epsilon_from_rates(1200 / 50_000, 23_000 / 50_000, 1e-5))
    assert abs(big.mean - point) < 0.02 and (big.interval()[1] - big.interval()[0]) < (hi - lo) / 5


def test_priors():
    assert rate_posteriors(3, 10, 4, 20, "jeffreys") == ((3.5, 7.5), (4.5, 16.5))
    assert rate_posteriors(3, 10, 4, 20, "uniform") == ((4, 8), (5, 17))
    assert rate_posteriors(3, 10, 4, 20, (2.0, 3.0)) == ((5.0, 10.0), (6.0, 19.0))
    # A prior pushing both rates up lowers eps.
    a = epsilon_posterior(3, 100, 40, 100, 1e-5, num_samples=16).mean
    b = epsilon_posterior(3, 100, 40, 100, 1e-5, prior=(20.0, 20.0), num_samples=16).mean
    assert b < a


def _coverage(mu, delta, n, reps, threshold, seed):
    mech = GaussianMechanism(mu)
    fpr, fnr = mech.rates(threshold)
    with jax.enable_x64(True):
        truth = float(epsilon_from_rates(float(fpr), float(fnr), delta))
    counts = simulate_counts(jax.random.PRNGKey(seed), mech, n, n, threshold, reps)
    covered = cp_above = 0
    for fp, fn in zip(np.asarray(counts.fp).tolist(), np.asarray(counts.fn).tolist()):
        post = epsilon_posterior(fp, n, fn, n, delta, num_samples=16, num_grid=512, num_eps=128)
        lo, hi = post.interval(0.95)
        covered += lo <= truth <= hi
        cp_above += clopper_pearson_epsilon(fp, n, fn, n, delta, 0.95) > truth
    return covered / reps, cp_above / reps, truth, mech


def test_coverage_gaussian_mechanism_optimal_attack():
    # Gaussian mechanism mu = 1 at delta = 0.01: the optimal threshold attack's eps equals the
    # mechanism's eps(delta) = 2.318. Over R = 300 audits the coverage of the 95% interval is
    # Binomial(300, 0.95)/300 if calibrated: sd = sqrt(.95 * .05 / 300) = 0.0126; we accept
    # 0.95 +- 3.5 sd (and the interval is only approximately calibrated, so no tighter).
    mech = GaussianMechanism(1.0)
    t = best_threshold(mech, 1e-2)
    cover, cp_above, truth, _ = _coverage(1.0, 1e-2, 1000, 300, t, seed=0)
    np.testing.assert_allclose(truth, mech.epsilon(1e-2), rtol=1e-3)
    assert abs(cover - 0.95) <= 3.5 * np.sqrt(0.95 * 0.05 / 300), cover
    # Clopper-Pearson is a 95% lower bound: above the truth in at most 5% (+ 3.5 sd) of audits.
    assert cp_above <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / 300), cp_above


@pytest.mark.slow
@pytest.mark.parametrize("mu,delta,n,threshold", [(1.0, 1e-5, 2000, 1.5), (0.5, 1e-2, 5000, 1.0)])
def test_coverage_gaussian_mechanism_more(mu, delta, n, threshold):
    # Measured (seed 1, 1000 audits): 0.952 and 0.950.
    reps = 1000
    cover, cp_above, _, _ = _coverage(mu, delta, n, reps, threshold, seed=1)
    assert abs(cover - 0.95) <= 3.5 * np.sqrt(0.95 * 0.05 / reps), cover
    assert cp_above <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / reps), cp_above


@pytest.mark.slow
@pytest.mark.parametrize("mu,delta,n,threshold", [(1.0, 1e-5, 2000, 0.5), (2.0, 1e-3, 500, 1.0), (2.0, 1e-3, 500, 2.5)])
def test_coverage_hard_cases(mu, delta, n, threshold):
    # Two regimes where a credible interval is not an exact confidence interval: the balanced
    # attack t = mu/2 (FPR = FNR, eps is the max of two equal terms: the posterior of the max is
    # pushed up) and few false positives (~3 expected). Measured coverage (seed 1, 1000 audits):
    # 0.931, 0.927, 0.925. We assert the deficit stays small (>= 0.90, i.e. > 3.5 sd below 0.95
    # is allowed but not more than 5 points) and that Clopper-Pearson stays valid.
    reps = 1000
    cover, cp_above, _, _ = _coverage(mu, delta, n, reps, threshold, seed=1)
    assert 0.90 <= cover <= 0.95 + 3.5 * np.sqrt(0.95 * 0.05 / reps), cover
    assert cp_above <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / reps), cp_above


@pytest.mark.parametrize(
    "args,name",
    [
        ((-1, 10, 2, 10, 1e-5), "fp"),
        ((1, 10, -2, 10, 1e-5), "fn"),
        ((11, 10, 2, 10, 1e-5), "fp"),
        ((1, 10, 12, 10, 1e-5), "fn"),
        ((1, 0, 2, 10, 1e-5), "n_negative"),
        ((1, 10, 2, 10, -0.1), "delta"),
        ((1, 10, 2, 10, 1.0), "delta"),
        ((1.5, 10, 2, 10, 1e-5), "fp"),
    ],
)
def test_posterior_errors_name_argument(args, name):
    with pytest.raises(ValueError, match=name):
        epsilon_posterior(*args)


def test_level_and_prior_errors():
    post = epsilon_posterior(1, 10, 2, 10, 1e-5, num_samples=16)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            post.interval(bad)
        with pytest.raises(ValueError, match="level"):
            post.hpd_interval(bad)
    with pytest.raises(ValueError, match="prior"):
        epsilon_posterior(1, 10, 2, 10, 1e-5, prior="flat")
    with pytest.raises(ValueError, match="prior"):
        epsilon_posterior(1, 10, 2, 10, 1e-5, prior=(0.0, 1.0))
    with pytest.raises(ValueError, match="method"):
        epsilon_posterior(1, 10, 2, 10, 1e-5, method="mcmc")
    with pytest.raises(ValueError, match="key"):
        epsilon_posterior(1, 10, 2, 10, 1e-5, method="monte_carlo")
    with pytest.raises(ValueError, match="num_chains"):
        gdp_posterior(jax.random.PRNGKey(0), np.zeros(5), np.ones(5), num_chains=0)
    with pytest.raises(ValueError, match="pos_scores"):
        gdp_posterior(jax.random.PRNGKey(0), np.zeros(5), np.array([1.0, np.nan, 2.0]))


def test_gdp_posterior_nuts():
    pytest.importorskip("arviz")
    mu_true, n = 1.5, 400
    neg, pos = simulate_scores(jax.random.PRNGKey(7), GaussianMechanism(mu_true), n, n)
    # Affine transform of the scores (mu is invariant to location/scale of the attack score).
    neg, pos = 3.0 * neg - 2.0, 3.0 * pos - 2.0
    res = gdp_posterior(jax.random.PRNGKey(8), neg, pos, num_samples=400, num_warmup=200, num_chains=2)
    import arviz as az

    idata = res.to_inference_data()
    assert idata.posterior["mu"].shape == (2, 400) and {"location", "scale"} <= set(idata.posterior.data_vars)
    assert set(idata.sample_stats.data_vars) == {"diverging", "acceptance_rate"}
    assert float(az.rhat(idata)["mu"]) < 1.05
    assert float(az.ess(idata)["mu"]) > 200
    diag = res.diagnostics()
    assert diag["rhat"] < 1.05 and diag["ess_tail"] > 100 and diag["divergences"] == 0
    draws = np.asarray(res.mu).ravel()
    # Reference: MLE mu_hat = (mean_pos - mean_neg) / pooled sd, asymptotic sd
    # sqrt(2/n + mu^2 / (4 n)) (two-sample, pooled variance from 2n points).
    s = np.sqrt(0.5 * (np.var(np.asarray(neg)) + np.var(np.asarray(pos))))
    mu_hat = (float(np.mean(pos)) - float(np.mean(neg))) / s
    se = np.sqrt(2 / n + mu_hat**2 / (4 * n))
    assert abs(draws.mean() - mu_hat) < 0.2 * se  # prior is weak: posterior mean ~ MLE
    np.testing.assert_allclose(draws.std(), se, rtol=0.2)  # ESS > 200: sd of sd ~ 5%
    assert abs(draws.mean() - mu_true) < 4 * se
    eps = np.asarray(res.epsilon(1e-5))
    assert eps.shape == res.mu.shape and np.all(eps >= 0)


def test_density_integrates_to_cdf_and_audit_counts():
    from probkit.privacy import AuditCounts, epsilon_density

    c = AuditCounts(12, 500, 230, 500)
    post = epsilon_posterior(c, 1e-5, num_samples=16)
    lo, hi = post.quantile([0.01, 0.99])
    e = np.linspace(lo, hi, 401)
    dens = post.pdf(e)
    # trapezoid integral of the density between two points = CDF difference
    np.testing.assert_allclose(np.trapezoid(dens, e), post.cdf(hi) - post.cdf(lo), atol=2e-3)
    np.testing.assert_allclose(epsilon_density(e[::100], c, delta=1e-5), dens[::100], rtol=1e-6)
    # Monte Carlo density (KDE) agrees roughly
    mc = epsilon_posterior(c, delta=1e-5, method="monte_carlo", key=jax.random.PRNGKey(0), num_samples=40_000)
    mid = post.quantile([0.25, 0.5, 0.75])
    np.testing.assert_allclose(mc.pdf(mid), post.pdf(mid), rtol=0.06)  # KDE: bias + noise of a few %
    # AuditCounts in place of the four counts
    assert post.interval() == epsilon_posterior(12, 500, 230, 500, 1e-5, num_samples=16).interval()
    # worse-than-random attacks: the posterior of the flipped counts is the same (symmetric prior)
    f = epsilon_posterior(c.flipped(), 1e-5, num_samples=16)
    np.testing.assert_allclose(f.quantile([0.1, 0.5, 0.9]), post.quantile([0.1, 0.5, 0.9]), atol=1e-3)
