"""Frequentist baselines: exact coverage of the rate intervals, eps bounds, errors."""
import numpy as np
import pytest
from scipy import stats

from probkit.privacy import (
    clopper_pearson_epsilon,
    epsilon_confidence_interval,
    epsilon_from_rates,
    epsilon_lower_bound,
    rate_interval,
)


@pytest.mark.parametrize("k,n", [(0, 20), (3, 20), (20, 20), (47, 300)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
    np.testing.assert_allclose(rate_interval(k, n, 0.9, "clopper_pearson"), (ci.low, ci.high), rtol=1e-10, atol=1e-12)


def test_jeffreys_interval():
    lo, hi = rate_interval(7, 40, 0.95, "jeffreys")
    np.testing.assert_allclose([lo, hi], stats.beta.ppf([0.025, 0.975], 7.5, 33.5))
    assert rate_interval(0, 40, 0.95, "jeffreys")[0] == 0.0 and rate_interval(40, 40, 0.95, "jeffreys")[1] == 1.0


@pytest.mark.parametrize("n,p", [(25, 0.1), (60, 0.5), (200, 0.02)])
def test_clopper_pearson_exact_coverage(n, p):
    # Exact coverage (sum of binomial probabilities of the k whose interval holds p): CP is
    # conservative, so coverage >= level for every p (deterministic check, no simulation).
    ks = np.arange(n + 1)
    pmf = stats.binom.pmf(ks, n, p)
    for sided, level in (("two", 0.95), ("upper", 0.9)):
        inside = np.array([lo <= p <= hi for lo, hi in (rate_interval(k, n, level, "clopper_pearson", sided) for k in ks)])
        assert pmf[inside].sum() >= level - 1e-12


def test_eps_bounds_order_and_limits():
    fp, nn, fn, npos, d = 30, 1000, 400, 1000, 1e-5
    point = float(epsilon_from_rates(fp / nn, fn / npos, d))
    cp = clopper_pearson_epsilon(fp, nn, fn, npos, d, 0.95)
    lo, hi = epsilon_confidence_interval(fp, nn, fn, npos, d, 0.95)
    assert lo <= cp <= point <= hi
    # The "independent" joint correction is less conservative than Bonferroni.
    assert epsilon_lower_bound(fp, nn, fn, npos, d, 0.95, correction="independent") >= cp
    # Jeffreys bounds are tighter than Clopper-Pearson's.
    assert epsilon_lower_bound(fp, nn, fn, npos, d, 0.95, "jeffreys") >= cp
    # All three lower bounds converge to the point estimate for large audits (Katz is asymptotic).
    big = [epsilon_lower_bound(100 * fp, 100 * nn, 100 * fn, 100 * npos, d, 0.95, m) for m in ("clopper_pearson", "jeffreys", "katz")]
    np.testing.assert_allclose(big, point, atol=0.05)
    assert all(b < point for b in big)


def test_clopper_pearson_coverage_simulated():
    # The CP lower bound exceeds the attack's true eps in at most 5% of audits (it is conservative;
    # binomial tolerance 3.5 sd at R = 2000 on top).
    rng = np.random.default_rng(0)
    a, b, d, n, reps = 0.05, 0.3, 1e-5, 500, 2000
    truth = max(np.log((1 - d - a) / b), np.log((1 - d - b) / a))
    fps, fns = rng.binomial(n, a, reps), rng.binomial(n, b, reps)
    above = np.mean([clopper_pearson_epsilon(int(x), n, int(y), n, d, 0.95) > truth for x, y in zip(fps, fns)])
    assert above <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / reps)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(fp=-1), "fp"),
        (dict(fp=11), "fp"),
        (dict(fn=-3), "fn"),
        (dict(n_positive=0), "n_positive"),
        (dict(delta=-0.1), "delta"),
        (dict(delta=1.2), "delta"),
        (dict(level=0.0), "level"),
        (dict(level=1.0), "level"),
    ],
)
def test_errors_name_argument(kwargs, name):
    args = dict(fp=1, n_negative=10, fn=2, n_positive=10, delta=1e-5, level=0.95) | kwargs
    with pytest.raises(ValueError, match=name):
        clopper_pearson_epsilon(**args)
    with pytest.raises(ValueError, match=name):
        epsilon_confidence_interval(**args)


def test_bad_method_names():
    with pytest.raises(ValueError, match="method"):
        rate_interval(1, 10, 0.9, "wald")
    with pytest.raises(ValueError, match="sided"):
        rate_interval(1, 10, 0.9, sided="left")
    with pytest.raises(ValueError, match="correction"):
        epsilon_lower_bound(1, 10, 2, 10, 1e-5, 0.9, correction="holm")


def test_audit_counts_accepted_and_flipped_attack():
    from probkit.privacy import AuditCounts

    c = AuditCounts(30, 1000, 400, 1000)
    assert clopper_pearson_epsilon(c, 1e-5) == clopper_pearson_epsilon(30, 1000, 400, 1000, 1e-5)
    assert clopper_pearson_epsilon(c, delta=1e-5, level=0.9) == clopper_pearson_epsilon(30, 1000, 400, 1000, 1e-5, 0.9)
    assert epsilon_confidence_interval(c, 1e-5) == epsilon_confidence_interval(30, 1000, 400, 1000, 1e-5)
    # A worse-than-random attack is bounded as its flip (both orientations give the same numbers).
    f = c.flipped()
    assert (f.fp, f.fn) == (970, 600)
    np.testing.assert_allclose(epsilon_lower_bound(f, 1e-5), epsilon_lower_bound(c, 1e-5), rtol=1e-12)
    np.testing.assert_allclose(epsilon_confidence_interval(f, 1e-5), epsilon_confidence_interval(c, 1e-5), rtol=1e-12)
    # Pure DP: delta = 0 works and gives a larger bound than delta > 0.
    assert clopper_pearson_epsilon(c, 0.0) > clopper_pearson_epsilon(c, 0.05)
    with pytest.raises(ValueError, match="not both"):
        clopper_pearson_epsilon(c, 1000, 400, 1000, 1e-5)
    with pytest.raises(ValueError, match="delta"):
        clopper_pearson_epsilon(c)
