"""Sample distances against closed forms, scipy, and duplication identities."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probkit.diagnostics import energy_distance, mmd, sliced_wasserstein, wasserstein_1d

KEY = jax.random.PRNGKey(0)


def test_sliced_wasserstein_zero_on_itself_and_shift_in_1d():
    x = jax.random.normal(KEY, (4000, 2))
    assert float(sliced_wasserstein(x, x, KEY)) == pytest.approx(0.0, abs=1e-6)
    # In 1-D, W2(N(0,1), N(m,1)) = |m|. Empirical W2 between two samples of size n carries an
    # O(n^-1/2 log) bias; at n = 2e4 it is ~0.02, so compare with 0.05 tolerance.
    a = jax.random.normal(jax.random.PRNGKey(1), (20_000, 1))
    b = jax.random.normal(jax.random.PRNGKey(2), (20_000, 1)) + 1.5
    assert float(sliced_wasserstein(a, b, KEY, num_projections=4)) == pytest.approx(1.5, abs=0.05)


def test_weighted_equals_duplicated_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=(70, 3)) + 0.3
    counts = rng.integers(1, 5, size=50)
    dup = np.repeat(x, counts, axis=0)
    fixed_mmd = lambda a, b, **w: mmd(a, b, bandwidths=[0.5, 1.0, 2.0], **w)  # noqa: E731 (median heuristic differs)
    for fn in (lambda a, b, **w: sliced_wasserstein(a, b, KEY, **w), fixed_mmd, energy_distance):
        weighted = float(fn(jnp.asarray(x), jnp.asarray(y), x_weights=jnp.asarray(counts, jnp.float32)))
        duplicated = float(fn(jnp.asarray(dup), jnp.asarray(y)))
        assert weighted == pytest.approx(duplicated, rel=2e-4, abs=1e-6)
    logw = np.log(counts.astype(np.float64)) + 7.0  # log-weights are normalised internally
    a = float(fixed_mmd(jnp.asarray(x), jnp.asarray(y), x_log_weights=jnp.asarray(logw)))
    b = float(fixed_mmd(jnp.asarray(x), jnp.asarray(y), x_weights=jnp.asarray(counts, jnp.float32)))
    assert a == pytest.approx(b, rel=1e-4)


def test_wasserstein_1d_and_energy_match_scipy():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=300), rng.normal(size=200) + 0.5
    wu, wv = rng.uniform(size=300), rng.uniform(size=200)
    ours = float(wasserstein_1d(jnp.asarray(u), jnp.asarray(v), jnp.asarray(wu / wu.sum()), jnp.asarray(wv / wv.sum()), 1.0))
    assert ours == pytest.approx(stats.wasserstein_distance(u, v, wu, wv), rel=1e-4)
    ed = float(energy_distance(u, v, jnp.asarray(wu), jnp.asarray(wv)))
    assert ed == pytest.approx(stats.energy_distance(u, v, wu, wv), rel=1e-3)


def test_mmd_and_energy_small_for_same_law_large_for_shift():
    # Null level: two independent samples of the same law, n = 2000 each. The V-statistic MMD
    # scales like n^-1/2; a 1-sigma shift in 2-D must be many times larger.
    x = jax.random.normal(jax.random.PRNGKey(3), (2000, 2))
    x2 = jax.random.normal(jax.random.PRNGKey(4), (2000, 2))
    y = x2 + jnp.array([1.0, 0.0])
    for fn in (mmd, energy_distance):
        same, shifted = float(fn(x, x2)), float(fn(x, y))
        assert shifted > 4 * same, (fn.__name__, same, shifted)


def test_blocking_does_not_change_results():
    x = jax.random.normal(jax.random.PRNGKey(5), (700, 2))
    y = jax.random.normal(jax.random.PRNGKey(6), (300, 2))
    assert float(mmd(x, y, block_size=64)) == pytest.approx(float(mmd(x, y, block_size=1024)), rel=1e-4)


def test_bad_input():
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="dimension"):
        sliced_wasserstein(x, jnp.zeros((10, 3)), KEY)
    with pytest.raises(ValueError, match="x_weights"):
        mmd(x, x, x_weights=jnp.ones(3))
    with pytest.raises(ValueError, match="x_weights"):
        energy_distance(x, x, x_weights=-jnp.ones(10))
    with pytest.raises(ValueError, match="y_log_weights"):
        sliced_wasserstein(x, x, KEY, y_log_weights=jnp.full(10, jnp.nan))
    with pytest.raises(ValueError, match="`x`"):
        mmd(jnp.zeros((2, 2, 2)), x)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(x, x, bandwidths=[-1.0])
