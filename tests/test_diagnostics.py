"""ArviZ conversion, weighted summaries and plotting helpers."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.diagnostics import kish_ess, to_inference_data, weighted_summary


class Particles(NamedTuple):  # duck-typed weighted-particle result (DESIGN §2 field names)
    particles: Any
    log_weights: Any
    ess: Any = None
    resampled: Any = None
    log_evidence: Any = None
    nfe: Any = None
    times: Any = None


def _full_result(n=500, k=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    lw = -0.5 * ((x - 1.0) ** 2).sum(1) + 3.0  # unnormalised on purpose
    return Particles(
        particles=jnp.asarray(x), log_weights=jnp.asarray(lw), ess=jnp.linspace(n, n / 3, k),
        resampled=jnp.arange(k) % 4 == 3, log_evidence=jnp.asarray(-1.25), nfe=37, times=jnp.linspace(1.0, 0.0, k + 1),
    )


# ------------------------------------------------------------------------------ weighted_summary
def test_weighted_summary_equals_duplicated_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3))
    counts = rng.integers(0, 6, size=60)
    counts[0] = 2
    dup = np.repeat(x, counts, axis=0)
    probs = (0.1, 0.25, 0.5, 0.9)
    s = weighted_summary(x, weights=counts, probs=probs)
    np.testing.assert_allclose(s.mean, dup.mean(0), rtol=1e-10)
    np.testing.assert_allclose(s.std, dup.std(0), rtol=1e-10)
    np.testing.assert_allclose(s.quantiles, np.quantile(dup, probs, axis=0, method="inverted_cdf"), rtol=1e-12)
    assert s.ess == pytest.approx(counts.sum() ** 2 / (counts**2).sum())
    with np.errstate(divide="ignore"):  # zero counts: log-weight -inf
        s2 = weighted_summary(x, np.log(counts) - 4.0, probs=probs)
        ess = kish_ess(np.log(counts + 0.0))
    np.testing.assert_allclose(s2.mean, s.mean, rtol=1e-10)
    assert s2.ess == pytest.approx(s.ess) and ess == pytest.approx(s.ess)
    assert "ESS (Kish)" in str(s) and s.quantiles.shape == (4, 2, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_summary_importance_sampling_target(seed):
    # Proposal N(0, 1), target N(1, 0.5^2): self-normalised IS estimates of the target mean and
    # sd. Their MC sd is about sd_target / sqrt(ESS) (mean) and sd_target / sqrt(2 ESS) (sd);
    # tolerance 5 / sqrt(ESS) * sd_target covers both with margin (ESS ~ 2e4 of N = 5e4 here).
    x = np.random.default_rng(seed).normal(size=50_000)
    lw = -0.5 * ((x - 1.0) / 0.5) ** 2 + 0.5 * x**2
    s = weighted_summary(x, lw, probs=(0.5,))
    tol = 5 * 0.5 / np.sqrt(s.ess)
    assert s.mean == pytest.approx(1.0, abs=tol)
    assert s.std == pytest.approx(0.5, abs=tol)
    assert s.quantiles[0] == pytest.approx(1.0, abs=2 * tol)  # median sd = sqrt(pi/2) sd / sqrt(ESS)
    assert 0.2 * x.size < s.ess < 0.6 * x.size  # exact ESS/N: 1 / E_q[w^2] ~ 0.42


def test_weighted_summary_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="log_weights"):
        weighted_summary(x, np.zeros(4))
    with pytest.raises(ValueError, match="weights"):
        weighted_summary(x, weights=-np.ones(5))
    with pytest.raises(ValueError, match="not both"):
        weighted_summary(x, np.zeros(5), weights=np.ones(5))
    with pytest.raises(ValueError, match="probs"):
        weighted_summary(x, probs=(1.5,))
    with pytest.raises(ValueError, match="particles"):
        weighted_summary(np.full((5, 2), np.nan))


# ------------------------------------------------------------------------------ InferenceData
def test_weighted_particles_to_inference_data():
    res = _full_result()
    idata = to_inference_data(res, var_name="theta")
    assert idata.posterior["theta"].shape == (1, 500, 2)
    np.testing.assert_allclose(idata.posterior["theta"].values[0], np.asarray(res.particles))
    lw = idata.sample_stats["log_weight"].values[0]
    np.testing.assert_allclose(np.exp(lw).sum(), 1.0, rtol=1e-10)
    np.testing.assert_allclose(lw - np.asarray(res.log_weights), (lw - np.asarray(res.log_weights))[0], atol=1e-9)
    attrs = idata.sample_stats.attrs
    assert attrs["log_evidence"] == pytest.approx(-1.25) and attrs["nfe"] == 37 and attrs["num_steps"] == 12
    assert attrs["final_ess"] == pytest.approx(kish_ess(res.log_weights)) and attrs["resampled_for_export"] == 0
    hist = idata.smc_history
    np.testing.assert_allclose(hist["ess"].values, np.asarray(res.ess))
    np.testing.assert_array_equal(hist["resampled"].values, np.asarray(res.resampled))
    np.testing.assert_allclose(hist["t"].values, np.asarray(res.times)[1:])


def test_resampled_export_and_minimal_result():
    res = _full_result(n=4000)
    idata = to_inference_data(res, key=jax.random.PRNGKey(0), num_draws=3000)
    draws = idata.posterior["x"].values[0]
    assert draws.shape == (3000, 2) and idata.sample_stats.attrs["resampled_for_export"] == 1
    np.testing.assert_allclose(idata.sample_stats["weight"].values, 1 / 3000)
    # every draw is one of the particles, and the equally weighted mean matches the weighted one
    # (systematic resampling: error O(1/M) per coordinate; compare at 3 / sqrt(ESS) * sd)
    assert np.isin(draws[:, 0], np.asarray(res.particles)[:, 0]).all()
    s = weighted_summary(res.particles, res.log_weights)
    np.testing.assert_allclose(draws.mean(0), s.mean, atol=3 * s.std.max() / np.sqrt(s.ess))
    # only the two required fields: no history group, no evidence
    minimal = to_inference_data(Particles({"a": jnp.ones((10, 3)), "b": jnp.zeros(10)}, jnp.zeros(10)))
    assert set(minimal.posterior.data_vars) == {"x_a", "x_b"} and minimal.posterior["x_a"].shape == (1, 10, 3)
    assert "smc_history" not in minimal.groups() and "log_evidence" not in minimal.sample_stats.attrs


def test_smc_engine_result_round_trip():
    from probkit.smc import FeynmanKacModel, run_smc

    # N(0,1) -> tempered towards N(0,1) * exp(-x^2 / 2) = N(0, 1/2) over 5 steps (static particles)
    model = FeynmanKacModel(
        init=lambda key: jax.random.normal(key, ()),
        transition=lambda key, t, tn, x: x,
        log_potential=lambda t, tn, prev, new: -0.5 * (t - tn) * new**2,
    )
    out = run_smc(jax.random.PRNGKey(0), model, 256, jnp.linspace(1.0, 0.0, 6), ess_threshold=0.0)
    idata = out.to_inference_data()
    assert idata.posterior["x"].shape == (1, 256)
    assert idata.smc_history["ess"].shape == (5,)
    assert idata.sample_stats.attrs["log_evidence"] == pytest.approx(float(out.log_evidence))


def test_chains_to_inference_data_and_arviz_diagnostics():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(3)
    good = rng.normal(size=(4, 1000, 2))
    idata = to_inference_data(good)
    summ = az.summary(idata)
    assert list(summ.index) == ["x[0]", "x[1]"]
    # i.i.d. draws: R-hat within 1 +- 0.01 and bulk ESS near 4000 (sd of the estimate ~ 5%)
    assert np.all(np.abs(az.rhat(idata)["x"].values - 1) < 0.01)
    assert np.all(az.ess(idata)["x"].values > 3000)
    bad = good + np.array([0.0, 0.0, 3.0, 3.0])[:, None, None]  # two chains stuck elsewhere
    assert np.all(az.rhat(to_inference_data({"mu": bad}))["mu"].values > 1.5)


def test_inference_data_errors():
    with pytest.raises(ValueError, match="log_weights"):
        to_inference_data(Particles(jnp.zeros((10, 2)), jnp.zeros(9)))
    with pytest.raises(ValueError, match="log_weights"):
        to_inference_data(Particles(jnp.zeros((10, 2)), jnp.full(10, jnp.nan)))
    with pytest.raises(ValueError, match="chains"):
        to_inference_data(np.zeros(10))
    with pytest.raises(ValueError, match="chains"):
        to_inference_data({"a": np.zeros((2, 10)), "b": np.zeros((3, 10))})
    with pytest.raises(ValueError, match="key"):
        to_inference_data(np.zeros((2, 10)), key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_draws"):
        to_inference_data(_full_result(), key=jax.random.PRNGKey(0), num_draws=0)


# ------------------------------------------------------------------------------------- plots
@pytest.fixture
def axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(9, 3))
    yield fig, ax
    plt.close(fig)


def test_plots_draw_and_save(axes, tmp_path, mixture_2d):
    from matplotlib.collections import PathCollection

    from probkit.diagnostics.plots import density_grid, plot_ess_trace, plot_hist_1d, plot_samples_on_density

    fig, (a0, a1, a2) = axes
    x = mixture_2d.sample(jax.random.PRNGKey(0), 500)
    log_prob = jax.vmap(mixture_2d.log_prob)
    plot_samples_on_density(a0, x, log_prob, log_weights=jnp.linspace(-1, 1, 500), title="mixture")
    scat = [c for c in a0.collections if isinstance(c, PathCollection)]
    assert len(scat) == 1 and scat[0].get_offsets().shape == (500, 2)
    sizes = scat[0].get_sizes()
    assert sizes.max() / sizes.min() == pytest.approx(np.e**2, rel=1e-6)  # area proportional to weight
    assert len(a0.collections) >= 2  # contour set + scatter
    X, Y, P = density_grid(log_prob, (-4, 4, -4, 4), 60)
    assert P.shape == (60, 60) and P.max() == pytest.approx(1.0)
    plot_samples_on_density(a0, x, grid=(X, Y, P))

    y = np.random.default_rng(0).normal(size=2000)
    plot_hist_1d(a1, y, density_fn=lambda g: np.exp(-0.5 * g**2) / np.sqrt(2 * np.pi), bins=30)
    heights = np.array([p.get_height() for p in a1.patches])
    widths = np.array([p.get_width() for p in a1.patches])
    assert (heights * widths).sum() == pytest.approx(1.0, rel=1e-6) and len(a1.lines) == 1

    ess = np.array([100, 80, 45, 100, 70, 40, 100])
    plot_ess_trace(a2, ess, ess == 100, num_particles=100, threshold=0.5, times=np.linspace(0.9, 0.0, 7))
    np.testing.assert_allclose(a2.lines[0].get_ydata(), ess / 100)
    assert a2.lines[1].get_xdata().size == 3 and a2.xaxis_inverted()
    fig.savefig(tmp_path / "diag.png")
    assert (tmp_path / "diag.png").stat().st_size > 1000


def test_plot_errors(axes):
    from probkit.diagnostics.plots import plot_ess_trace, plot_hist_1d, plot_samples_on_density

    _, (a0, a1, a2) = axes
    with pytest.raises(ValueError, match="samples"):
        plot_samples_on_density(a0, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="weights"):
        plot_samples_on_density(a0, np.zeros((10, 2)), weights=np.ones(3))
    with pytest.raises(ValueError, match="samples"):
        plot_hist_1d(a1, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="resampled"):
        plot_ess_trace(a2, np.ones(5), np.ones(4, bool))
