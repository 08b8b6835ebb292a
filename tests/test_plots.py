"""probkit.diagnostics.plots: the diagnostic figures draw what the results hold (headless)."""
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from probkit.diagnostics import plots  # noqa: E402
from probkit.smc import WeightedParticles  # noqa: E402


def _fake_result(k=20, n=64, d=2):
    rng = np.random.default_rng(0)
    resampled = np.zeros(k, bool)
    resampled[[5, 12]] = True
    lw = rng.normal(size=n)
    lw -= np.log(np.exp(lw).sum())
    return WeightedParticles(
        particles=jnp.asarray(rng.normal(size=(n, d))), log_weights=jnp.asarray(lw), ess=jnp.linspace(n, n / 3, k),
        resampled=jnp.asarray(resampled), log_evidence=jnp.asarray(0.0), log_weight_spread=jnp.linspace(0, 3, k),
        nfe=k, times=jnp.linspace(1.0, 0.0, k + 1), acceptance=jnp.full(k, jnp.nan),
    )


def test_smc_history_marks_resampling_events():
    res = _fake_result()
    fig, axs = plt.subplots(1, 2)
    ax_ess, ax_spread = plots.plot_smc_history(axs, res)
    # two resampling events -> two vertical lines on each axis, plus the ESS / N curve ending at 1/3
    vlines = [l for l in ax_ess.get_lines() if np.allclose(np.asarray(l.get_xdata(), float)[0], l.get_xdata()[-1]) and len(l.get_xdata()) == 2]
    assert len(vlines) == 2
    ess_line = [l for l in ax_ess.get_lines() if len(l.get_xdata()) == 20][0]
    np.testing.assert_allclose(ess_line.get_ydata()[-1], 1 / 3, rtol=1e-5)
    assert ax_ess.xaxis_inverted()
    assert "2 resampling events" in ax_ess.get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="result"):
        plots.plot_smc_history(plt.gca(), np.zeros(3))


def test_marginals_and_dispatcher():
    res = _fake_result()
    ref = np.random.default_rng(1).normal(size=(500, 2))
    fig, axs = plt.subplots(1, 2)
    plots.plot_marginals(axs, res.particles, ref, log_weights=res.log_weights)
    assert len(axs[0].patches) > 50  # bars of the histogram plus the reference step
    with pytest.raises(ValueError, match="reference"):
        plots.plot_marginals(axs, res.particles, np.zeros((10, 3)))
    plt.close(fig)
    fig = plots.plot_diagnostics(res, ref)
    assert len(fig.axes) >= 5  # ESS, spread, 2 marginals, 2-D cloud
    plt.close(fig)
    fig = plots.plot_diagnostics(np.asarray(res.particles), ref)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_dlg_chain_plots_via_arviz():
    from probkit import dmcmc
    from probkit.diffusion import VP
    from probkit.models import GaussianMixture

    proc = VP()
    gm = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.0, 0.0], [1.0, 0.0]]), jnp.full((2, 2), 0.1))
    res = dmcmc.dlg(jax.random.PRNGKey(0), proc, gm.score_fn(proc), (2,), logdensity_fn=gm.logdensity_fn(proc),
                    num_chains=4, num_samples=8, burn_in=4, t_move=dmcmc.NoiseGrid(num_levels=16),
                    denoise=dmcmc.Denoise(num_steps=3))
    axes = plots.plot_chains(res, kind="rank")
    assert np.size(axes) >= 1
    fig = plots.plot_diagnostics(res, gm.sample(jax.random.PRNGKey(1), 200))
    assert len(fig.axes) >= 4
    plt.close("all")
    with pytest.raises(ValueError, match="kind"):
        plots.plot_chains(res, kind="pairs")
