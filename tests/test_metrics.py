"""Sample distances against closed forms, scipy, brute force and duplication identities."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from probkit.diagnostics import energy_distance, mmd, sliced_wasserstein
from probkit.diagnostics.metrics import median_heuristic, wasserstein_1d

KEY = jax.random.PRNGKey(0)


def _normal_pair(seed, n, m, d, shift):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(kx, (n, d)), jax.random.normal(ky, (m, d)) + jnp.asarray(shift)


# ------------------------------------------------------------------------------ sliced Wasserstein
def test_sliced_wasserstein_zero_on_itself():
    x = jax.random.normal(KEY, (1000, 2))
    assert float(sliced_wasserstein(x, x, KEY)) == pytest.approx(0.0, abs=1e-6)
    # unequal sizes (general quantile path): x repeated twice is the same empirical measure
    assert float(sliced_wasserstein(x, jnp.concatenate([x, x]), KEY)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliced_wasserstein_gaussian_shift(seed):
    # 1-D: W2(N(0,1), N(m,1)) = |m|. The empirical W2 between two samples of size n has an
    # O(sqrt(log n / n)) excess; at n = 2e4, sqrt(W2^2 + 2 * 1/n * log n)-|m| < 0.01, and its
    # fluctuation (sd of the mean difference, sqrt(2/n) = 0.01) is smaller than the 0.04 tolerance.
    a, b = _normal_pair(seed, 20_000, 20_000, 1, [1.5])
    assert float(sliced_wasserstein(a, b, KEY, num_projections=4)) == pytest.approx(1.5, abs=0.04)
    # d = 2, y = x + m (the same sample translated): every projection is translated by theta.m, so
    # W2 = |theta.m| exactly and SW2^2 = E (theta.m)^2 = |m|^2 / d. Only the directions are random:
    # (theta.m)^2 / |m|^2 = cos^2 has mean 1/2 and variance 1/8, so with L = 4096 directions the
    # relative sd is sqrt(1/8 / L) / (1/2) = 1.1% on SW2^2, 0.55% on SW2; tolerance 2.5% (4.5 sd).
    m = jnp.array([1.2, -0.9])
    a = jax.random.normal(jax.random.PRNGKey(seed + 10), (500, 2))
    sw = float(sliced_wasserstein(a, a + m, jax.random.PRNGKey(seed), num_projections=4096))
    assert sw == pytest.approx(float(jnp.linalg.norm(m)) / np.sqrt(2), rel=0.025)


def test_sorted_formula_equals_quantile_formula():
    a, b = _normal_pair(3, 500, 500, 3, [0.5, 0.0, 0.0])
    u = jnp.ones(500)
    for p in (1.0, 2.0, 3.0):
        fast = float(sliced_wasserstein(a, b, KEY, 64, p))
        general = float(sliced_wasserstein(a, b, KEY, 64, p, x_weights=u, y_weights=u))  # forces quantile path
        assert fast == pytest.approx(general, rel=1e-4)


def test_wasserstein_1d_matches_scipy():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=300), rng.normal(size=200) + 0.5
    wu, wv = rng.uniform(size=300), rng.uniform(size=200)
    ours = float(wasserstein_1d(jnp.asarray(u), jnp.asarray(v), jnp.asarray(wu / wu.sum()), jnp.asarray(wv / wv.sum()), 1.0))
    assert ours == pytest.approx(stats.wasserstein_distance(u, v, wu, wv), rel=1e-4)
    # 1-D sliced distance with p = 1 is W1 itself (theta = +-1)
    sw = float(sliced_wasserstein(u, v, KEY, 3, 1.0, x_weights=wu, y_weights=wv))
    assert sw == pytest.approx(stats.wasserstein_distance(u, v, wu, wv), rel=1e-4)


def test_weighted_equals_duplicated_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=(70, 3)) + 0.3
    counts = rng.integers(0, 5, size=50)  # zero weights drop points
    counts[0] = 3
    dup = np.repeat(x, counts, axis=0)
    fixed_mmd = lambda a, b, **w: mmd(a, b, bandwidths=[0.5, 1.0, 2.0], **w)  # noqa: E731 (median heuristic differs)
    for fn in (lambda a, b, **w: sliced_wasserstein(a, b, KEY, **w), fixed_mmd, energy_distance):
        weighted = float(fn(jnp.asarray(x), jnp.asarray(y), x_weights=jnp.asarray(counts, jnp.float32)))
        duplicated = float(fn(jnp.asarray(dup), jnp.asarray(y)))
        assert weighted == pytest.approx(duplicated, rel=2e-4, abs=1e-6)
    with np.errstate(divide="ignore"):  # log 0 = -inf: a zero weight
        logw = np.log(counts.astype(np.float64)) + 7.0  # log-weights are normalised internally
    for fn in (lambda a, b, **w: sliced_wasserstein(a, b, KEY, **w), fixed_mmd, energy_distance):
        a = float(fn(jnp.asarray(x), jnp.asarray(y), y_log_weights=None, x_log_weights=jnp.asarray(logw)))
        b = float(fn(jnp.asarray(x), jnp.asarray(y), x_weights=jnp.asarray(counts, jnp.float32)))
        assert a == pytest.approx(b, rel=1e-4)


# ------------------------------------------------------------------------------------------- MMD
def _brute_mmd2(x, y, wx, wy, hs, unbiased):
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h * h)) for h in hs)

    wx, wy = wx / wx.sum(), wy / wy.sum()
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if unbiased:
        np.fill_diagonal(kxx, 0.0)
        np.fill_diagonal(kyy, 0.0)
        return wx @ kxx @ wx / (1 - (wx**2).sum()) + wy @ kyy @ wy / (1 - (wy**2).sum()) - 2 * wx @ kxy @ wy
    return wx @ kxx @ wx + wy @ kyy @ wy - 2 * wx @ kxy @ wy


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_matches_brute_force(unbiased):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.4
    hs = [0.7, 1.3]
    for wx, wy in ((np.ones(40), np.ones(30)), (rng.uniform(size=40), rng.uniform(size=30))):
        ours = float(mmd(x, y, hs, wx, wy, unbiased=unbiased, squared=True, block_size=16))
        assert ours == pytest.approx(_brute_mmd2(x, y, wx, wy, hs, unbiased), rel=1e-4, abs=1e-6)


def test_mmd_unbiased_matches_closed_form():
    # N(0, I) vs N(m, I) in d dims, one RBF bandwidth h:
    #   E k(X, X') = (h^2 / (h^2 + 2))^(d/2),  E k(X, Y) = (h^2 / (h^2 + 2))^(d/2) exp(-|m|^2 / (2 (h^2 + 2)))
    # so MMD^2 = 2 c (1 - exp(-|m|^2 / (2 (h^2 + 2)))). The U-statistic is unbiased; its sd at
    # n = m = 3000 is about 0.004 (measured over 5 seeds at n = 2000: 0.0055, scaled by sqrt(2/3));
    # tolerance 0.015 (~3.5 sd). Using h^2 instead of 2 h^2 in the kernel would be off by 0.03.
    m = np.array([1.0, 0.0])
    for seed, h in ((0, 1.0), (1, 2.0)):
        c = (h * h / (h * h + 2)) ** (2 / 2)
        exact = 2 * c * (1 - np.exp(-(m @ m) / (2 * (h * h + 2))))
        x, y = _normal_pair(seed, 3000, 3000, 2, m)
        assert float(mmd(x, y, h, unbiased=True, squared=True)) == pytest.approx(exact, abs=0.015)


def test_mmd_and_energy_null_level_from_sample_size():
    # Same law, n = m i.i.d. draws. Expectations of the V-statistics under the null are exact:
    #   E MMD_V^2 = (1/n + 1/m) (K - E k(X, X')) with K = k(a, a) = 1, E k = h^2 / (h^2 + 2) (d = 2);
    #   E D_V^2   = (1/n + 1/m) E|X - X'| with E|X - X'| = sqrt(pi) for N(0, I_2).
    # The mean over S = 24 seeds must lie within 4 standard errors (across-seed sd / sqrt(S)); the
    # U-statistic's mean within 4 SE of 0. A shift by 1 sd must give >> the null level.
    n, h, S = 400, 1.0, 24
    v_mmd, u_mmd, v_en = [], [], []
    for s in range(S):
        x, y = _normal_pair(100 + s, n, n, 2, [0.0, 0.0])
        v_mmd.append(float(mmd(x, y, h, squared=True)))
        u_mmd.append(float(mmd(x, y, h, squared=True, unbiased=True)))
        v_en.append(float(energy_distance(x, y)) ** 2)
    for vals, expected in ((v_mmd, (2 / n) * (1 - h * h / (h * h + 2))), (u_mmd, 0.0), (v_en, (2 / n) * np.sqrt(np.pi))):
        vals = np.asarray(vals)
        se = vals.std(ddof=1) / np.sqrt(S)
        assert abs(vals.mean() - expected) < 4 * se + 1e-6, (vals.mean(), expected, se)
    x, y = _normal_pair(7, n, n, 2, [1.0, 0.0])
    assert float(mmd(x, y, h, squared=True)) > 10 * (2 / n) * (1 - h * h / (h * h + 2))
    assert float(energy_distance(x, y)) ** 2 > 10 * (2 / n) * np.sqrt(np.pi)


def test_default_bandwidths_and_blocking():
    x, y = _normal_pair(5, 300, 200, 2, [0.3, 0.0])
    assert float(mmd(x, y, block_size=64)) == pytest.approx(float(mmd(x, y)), rel=1e-4)  # 5 blocks, 1 padded
    h = float(median_heuristic(x, y))
    fixed = float(mmd(x, y, h * np.array([0.25, 0.5, 1.0, 2.0, 4.0])))
    assert float(mmd(x, y)) == pytest.approx(fixed, rel=1e-5)
    # median distance between two N(0, I_2) points is sqrt(2) * sqrt(2 ln 2) = 1.665; the shift adds a bit
    assert 1.5 < h < 1.9


# ------------------------------------------------------------------------------- energy distance
def test_energy_matches_scipy_1d():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=300), rng.normal(size=200) + 0.5
    wu, wv = rng.uniform(size=300), rng.uniform(size=200)
    assert float(energy_distance(u, v, wu, wv)) == pytest.approx(stats.energy_distance(u, v, wu, wv), rel=1e-3)
    assert float(energy_distance(u, v)) == pytest.approx(stats.energy_distance(u, v), rel=1e-3)


def test_energy_matches_closed_form_2d():
    # D^2 = 2 E|X - Y| - 2 E|X - X'| for N(0, I) vs N(m, I): X - Y ~ N(-m, 2 I), so
    # |X - Y| = sqrt(2 W), W ~ noncentral chi^2(d, |m|^2 / 2); E|X - X'| = sqrt(pi) in d = 2.
    # V-statistic bias is -(2/n) sqrt(pi) ~ 0.001 at n = 4000. The sd of D^2 at n = 4000 is 0.025
    # (measured over 6 seeds, float64 brute force agreeing to 1e-6), so the mean of 3 seeds has
    # sd 0.015; tolerance 0.06 (4 sd). The target is 0.53; dropping the factor 2 on E|X - Y| or
    # using squared distances would move it by > 1.
    m = np.array([1.0, 0.5])
    nc = float(m @ m) / 2
    e_xy = integrate.quad(lambda w: np.sqrt(2 * w) * stats.ncx2.pdf(w, 2, nc), 0, np.inf)[0]
    exact = 2 * e_xy - 2 * np.sqrt(np.pi)
    vals = [float(energy_distance(*_normal_pair(11 + s, 4000, 4000, 2, m))) ** 2 for s in range(3)]
    assert np.mean(vals) == pytest.approx(exact, abs=0.06)


# ------------------------------------------------------------------------------------- plumbing
def test_jittable():
    x, y = _normal_pair(5, 300, 200, 2, [0.3, 0.0])  # the shapes of test_default_bandwidths_and_blocking
    w = jnp.linspace(0.1, 1.0, 300)
    sw = jax.jit(lambda a, b, k, w: sliced_wasserstein(a, b, k, 32, x_weights=w))
    assert float(sw(x, y, KEY, w)) == pytest.approx(float(sliced_wasserstein(x, y, KEY, 32, x_weights=w)), rel=1e-5)
    assert float(jax.jit(lambda a, b: mmd(a, b))(x, y)) == pytest.approx(float(mmd(x, y)), rel=1e-5)


def test_bad_input():
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="dimension"):
        sliced_wasserstein(x, jnp.zeros((10, 3)), KEY)
    with pytest.raises(ValueError, match="x_weights"):
        mmd(x, x, x_weights=jnp.ones(3))
    with pytest.raises(ValueError, match="x_weights"):
        energy_distance(x, x, x_weights=-jnp.ones(10))
    with pytest.raises(ValueError, match="y_weights"):
        energy_distance(x, x, y_weights=jnp.zeros(10))
    with pytest.raises(ValueError, match="y_log_weights"):
        sliced_wasserstein(x, x, KEY, y_log_weights=jnp.full(10, jnp.nan))
    with pytest.raises(ValueError, match="not both"):
        mmd(x, x, x_weights=jnp.ones(10), x_log_weights=jnp.zeros(10))
    with pytest.raises(ValueError, match="`x`"):
        mmd(jnp.zeros((2, 2, 2)), x)
    with pytest.raises(ValueError, match="`y`"):
        energy_distance(x, jnp.full((3, 2), jnp.inf))
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(x, x, bandwidths=[-1.0])
    with pytest.raises(ValueError, match="num_projections"):
        sliced_wasserstein(x, x, KEY, num_projections=0)
    with pytest.raises(ValueError, match="`p`"):
        sliced_wasserstein(x, x, KEY, p=0.5)
    with pytest.raises(ValueError, match="block_size"):
        mmd(x, x, block_size=0)
    with pytest.raises(ValueError, match="y_weights"):
        mmd(x, x, y_weights=jnp.zeros(10).at[3].set(1.0), unbiased=True)


@pytest.mark.slow
def test_large_samples_blocked():
    # n = m = 2e4 in d = 8: the full (n, m) kernel would need 1.6 GB per matrix in float32; the
    # row blocks need O(block_size * m). Null level as in test_mmd_and_energy_null_level_from_sample_size:
    # E MMD_V^2 = (2/n)(1 - E k) <= 2/n = 1e-4, E D_V^2 = (2/n) E|X - X'| = (2/n) sqrt(2) E chi_8 = (2/n) sqrt(2) 2.74.
    x, y = _normal_pair(21, 20_000, 20_000, 8, jnp.zeros(8))
    assert 0.0 <= float(mmd(x, y, 2.0, squared=True)) < 5 * 2 / 20_000
    assert float(energy_distance(x, y)) ** 2 < 5 * (2 / 20_000) * np.sqrt(2) * 2.74
    assert float(mmd(x, y + 0.3)) > 3 * float(mmd(x, y))
