"""Tests of probkit.dmcmc (Denoising Langevin Gibbs, Kim & Ye 2023) against exact mixtures.

Monte Carlo tolerances: the chain tests run N independent chains and use ONE state per chain, so
the draws are i.i.d. from the chain's law after the given number of sweeps. A bin frequency then
has standard error sqrt(p(1-p)/N) and a sample mean sd/sqrt(N); we use chi-square p-values
(> 1e-3) for histograms and 4.5 standard errors for means (false alarm rate < 1e-4 per check),
and run two seeds where one could pass by luck.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from probkit import dmcmc, smc
from probkit.diffusion import VP, time_grid
from probkit.models import GaussianMixture

PROC = VP()


def _vp_alpha_sigma(t: float) -> tuple[float, float]:
    b = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2
    return math.exp(-0.5 * b), math.sqrt(-math.expm1(-b))


def _brute_density(gm: GaussianMixture, x: np.ndarray, t: float) -> float:
    """p_t(x) in float64 with scipy, independently of GaussianMixture.noised."""
    a, s = _vp_alpha_sigma(t)
    w, mu, cov = (np.asarray(v, np.float64) for v in (gm.weights, gm.means, gm.full_covs()))
    d = mu.shape[1]
    out = 0.0
    for k in range(len(w)):
        c = a**2 * cov[k] + s**2 * np.eye(d)
        r = x - a * mu[k]
        out += w[k] * math.exp(-0.5 * r @ np.linalg.solve(c, r)) / math.sqrt(np.linalg.det(2 * math.pi * c))
    return out


def _coarse(p: np.ndarray, bins: int) -> np.ndarray:
    return p.reshape(bins, -1).sum(1)


# ------------------------------------------------------------------------------------------------
# the t | x conditional
@pytest.mark.parametrize("log_prior", [None, lambda t: -3.0 * t])
def test_t_conditional_normalised_and_matches_brute_force(mixture_2d, log_prior):
    t_min, t_max, g = 0.05, 0.8, 128
    grid, log_w = dmcmc.NoiseGrid((t_min, t_max), g, log_prior).nodes()
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(log_w))), 1.0, atol=1e-6)
    prior = (lambda t: 1.0) if log_prior is None else (lambda t: math.exp(log_prior(t)))
    edges = np.linspace(t_min, t_max, g + 1)
    for x in ([0.3, -0.4], [-2.0, 0.5], [1.0, 1.5]):
        logp = dmcmc.t_conditional_log_probs(mixture_2d.logdensity_fn(PROC), jnp.array(x), grid, log_w)
        p = np.exp(np.asarray(logp, np.float64))
        assert abs(p.sum() - 1.0) < 1e-5
        # brute force: mass of the continuous conditional p(t | x) ∝ p_t(x) pi(t) on each cell
        f = lambda t: _brute_density(mixture_2d, np.array(x), t) * prior(t)  # noqa: E731
        cells = np.array([integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-10)[0] for lo, hi in zip(edges[:-1], edges[1:])])
        cells /= cells.sum()
        # midpoint rule: per-cell relative error ~ Δ² f''/(24 f) ≲ 1e-3 here; float32 ~1e-6
        np.testing.assert_allclose(p, cells, rtol=2e-3, atol=1e-6)


def test_t_grid_prior_masses():
    grid, log_w = dmcmc.NoiseGrid((0.1, 0.9), 8, lambda t: jnp.log(t)).nodes()
    np.testing.assert_allclose(np.asarray(grid), 0.1 + 0.1 * (np.arange(8) + 0.5), rtol=1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(log_w)), np.asarray(grid) / np.asarray(grid).sum(), rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# the Gibbs chain
def _exact_joint(key, gm, grid, log_w, n):
    """n i.i.d. draws of the discretised joint: j ~ w, x ~ p_{t_j}."""
    k_j, k_x = jax.random.split(key)
    j = jax.random.categorical(k_j, log_w, shape=(n,))
    keys = jax.random.split(k_x, n)
    x = jax.vmap(lambda k, t: gm.noised(PROC, t).sample(k, 1)[0])(keys, grid[j])
    return j, x


@pytest.mark.parametrize("x_move,seed", [("mala", 0), ("mala", 1), ("hmc", 2)])
def test_kernel_leaves_exact_joint_invariant(mixture_2d, x_move, seed):
    """Started from the exact discretised joint, K Gibbs sweeps keep it: t-histogram and moments."""
    n, sweeps = 4000, 15
    grid, log_w = dmcmc.NoiseGrid((0.05, 0.7), 64, lambda t: -3.0 * t).nodes()
    move = (smc.mala(dmcmc.noise_scaled_step(PROC, 0.8), 2) if x_move == "mala"
            else smc.hmc(dmcmc.noise_scaled_step(PROC, 0.5, 1.0), 5, 2))
    kernel = dmcmc.build_kernel(mixture_2d.score_fn(PROC), move, grid, log_w,
                                logdensity_fn=mixture_2d.logdensity_fn(PROC))
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    j0, x0 = _exact_joint(key_init, mixture_2d, grid, log_w, n)

    @jax.jit
    def run(keys, x0):
        def chain(k, x):
            state, info = jax.lax.scan(lambda s, kk: kernel.step(kk, s), kernel.init(x), jax.random.split(k, sweeps))
            return state, info.acceptance_rate

        return jax.vmap(chain)(keys, x0)

    state, acc = run(jax.random.split(key_run, n), x0)  # the first sweep draws t | x afresh
    assert 0.3 < float(acc.mean()) <= 1.0
    # t-marginal = w (coarsened to 8 bins)
    counts = np.bincount(np.asarray(state.t_index), minlength=64).reshape(8, -1).sum(1)
    expected = n * _coarse(np.exp(np.asarray(log_w, np.float64)), 8)
    assert stats.chisquare(counts, expected * counts.sum() / expected.sum()).pvalue > 1e-3
    # E[x] and E[x x^T] under the joint: sum_j w_j (alpha_j mu, alpha_j^2 (S + mu mu^T) + sigma_j^2 I)
    w = np.exp(np.asarray(log_w, np.float64))
    a = np.array([_vp_alpha_sigma(float(t))[0] for t in grid])
    s2 = np.array([_vp_alpha_sigma(float(t))[1] ** 2 for t in grid])
    m0, c0 = np.asarray(mixture_2d.mean(), np.float64), np.asarray(mixture_2d.covariance(), np.float64)
    mean = (w * a).sum() * m0
    second = (w * a**2).sum() * (c0 + np.outer(m0, m0)) + (w * s2).sum() * np.eye(2)
    x = np.asarray(state.x, np.float64)
    se = x.std(0) / math.sqrt(n)
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * se)
    sq = x**2
    assert np.all(np.abs(sq.mean(0) - np.diag(second)) < 4.5 * sq.std(0) / math.sqrt(n))


def test_dlg_t_marginal_and_denoised_samples_reach_target(mixture_2d):
    """From the default start (prior noise at t_max): after burn-in the chain's t-marginal is the
    exact marginal w, and the denoised samples follow the data mixture (mode frequencies, mean).
    The n chains are independent replicates (one kept state each), so n = 4000 plays the role of
    many seeds."""
    n = 4000
    res = dmcmc.dlg(
        jax.random.PRNGKey(0), PROC, mixture_2d.score_fn(PROC), (2,), logdensity_fn=mixture_2d.logdensity_fn(PROC),
        num_chains=n, num_samples=1, burn_in=60, t_move=dmcmc.NoiseGrid((0.05, 0.6), 64),
        x_move=smc.mala(dmcmc.noise_scaled_step(PROC, 0.8), 2), denoise=dmcmc.Denoise(num_steps=25),
    )
    assert res.x_move == "mala" and res.t_move == "exact"
    assert res.samples.shape == (n, 2) and res.t.shape == (n, 1) and res.t_trace.shape == (n, 61)
    counts = np.bincount(np.asarray(jnp.searchsorted(res.grid, res.t[:, 0])), minlength=64).reshape(8, -1).sum(1)
    expected = n * _coarse(np.exp(np.asarray(res.grid_log_weights, np.float64)), 8)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    # denoised samples vs the exact law at the end time t_min of the integration
    target = mixture_2d.noised(PROC, PROC.t_min)
    comp = np.asarray(jax.vmap(lambda z: jnp.argmax(target.responsibilities(z)))(res.samples))
    ref = target.sample(jax.random.PRNGKey(99), 200_000)
    comp_ref = np.asarray(jax.vmap(lambda z: jnp.argmax(target.responsibilities(z)))(ref))
    p_ref = np.bincount(comp_ref, minlength=3) / comp_ref.size  # MC error ~1e-3, negligible
    p_hat = np.bincount(comp, minlength=3) / n
    assert np.all(np.abs(p_hat - p_ref) < 4.5 * np.sqrt(p_ref * (1 - p_ref) / n))
    x = np.asarray(res.samples, np.float64)
    assert np.all(np.abs(x.mean(0) - np.asarray(target.mean())) < 4.5 * x.std(0) / math.sqrt(n))


def test_ula_and_nfe_accounting():
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[0.5, -0.5]]), jnp.array([[0.4, 0.6]]))
    res = dmcmc.dlg(
        jax.random.PRNGKey(3), PROC, gm.score_fn(PROC), (2,), logdensity_fn=gm.logdensity_fn(PROC),
        x_move=smc.langevin(dmcmc.noise_scaled_step(PROC, 0.5), 3), num_chains=16, num_samples=5, burn_in=10,
        thin=2, t_move=dmcmc.NoiseGrid(num_levels=32), denoise=dmcmc.Denoise("heun", 4, "uniform"),
    )
    sweeps = 10 + 5 * 2
    assert res.x_move == "langevin" and res.acceptance_rate == 1.0
    assert res.nfe_mcmc == pytest.approx(sweeps * 3 / 5)
    assert res.nfe_denoise == 4 * 2
    assert res.nfe == pytest.approx(res.nfe_mcmc + 8)
    assert res.t_evals == pytest.approx(sweeps * 32 / 5)
    assert res.samples.shape == (80, 2) and np.all(np.isfinite(np.asarray(res.samples)))
    assert res.t_trace.shape == (16, sweeps)
    # the kept t are the trace values at the kept sweeps
    np.testing.assert_array_equal(np.asarray(res.t), np.asarray(res.t_trace[:, 10 + 1 :: 2]))
    # per-sweep costs of the adjusted moves (one re-initialising value_and_grad at the new t)
    grid, log_w = dmcmc.NoiseGrid((0.1, 0.5), 8).nodes()
    lp = gm.logdensity_fn(PROC)
    assert dmcmc.build_kernel(gm.score_fn(PROC), smc.mala(0.1, 3), grid, log_w, logdensity_fn=lp).nfe_per_step == 4
    k_hmc = dmcmc.build_kernel(gm.score_fn(PROC), smc.hmc(0.1, 4, 3), grid, log_w, logdensity_fn=lp)
    assert k_hmc.nfe_per_step == 13 and k_hmc.t_evals_per_step == 8 and k_hmc.t_move == "exact"


@pytest.mark.parametrize("kind", ["uniform", "quadratic", "log_snr", "edm"])
def test_time_grid_with_traced_start_matches_time_grid(kind):
    for t0 in (0.9, 0.3):
        ref = time_grid(PROC, 7, kind, t_max=t0)
        got = jax.jit(lambda t: time_grid(PROC, 7, kind, t_max=t))(jnp.asarray(t0))
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=2e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# learned noise level
def test_noise_estimator_learns_the_conditional(mixture_2d):
    """The classifier's q(t_j | x) is close to the exact grid conditional: its mean KL over the
    joint is a small fraction of the KL of the prior w (the no-information classifier)."""
    fit = dmcmc.train_noise_estimator(
        jax.random.PRNGKey(0), PROC, mixture_2d.sample(jax.random.PRNGKey(1), 20_000), dmcmc.NoiseGrid((0.05, 0.7), 32),
        hidden=(64, 64), num_steps=600, batch_size=256, learning_rate=3e-3,
    )
    est = fit.estimator
    assert est.noise_range == pytest.approx((0.05, 0.7), abs=1e-6)
    assert float(fit.losses[-100:].mean()) < float(fit.losses[:20].mean())
    _, x = _exact_joint(jax.random.PRNGKey(2), mixture_2d, est.grid, est.log_weights, 2000)
    exact = jax.vmap(lambda z: dmcmc.t_conditional_log_probs(mixture_2d.logdensity_fn(PROC), z, est.grid, est.log_weights))(x)
    learned = jax.vmap(est.log_probs)(x)
    kl = lambda lp, lq: jnp.mean(jnp.sum(jnp.exp(lp) * (lp - lq), -1))  # noqa: E731
    kl_learned = float(kl(exact, learned))
    kl_prior = float(kl(exact, jnp.broadcast_to(est.log_weights, exact.shape)))
    assert kl_learned < 0.1 * kl_prior, (kl_learned, kl_prior)
    # score-only DLG with the learned t-move: runs, t stays in range, denoised mean near target
    res = dmcmc.dlg(
        jax.random.PRNGKey(4), PROC, mixture_2d.score_fn(PROC), (2,), t_move=est, num_chains=1000,
        num_samples=1, burn_in=40, x_move=smc.langevin(dmcmc.noise_scaled_step(PROC, 0.3), 2),
        denoise=dmcmc.Denoise(num_steps=20),
    )
    assert res.x_move == "langevin" and res.t_move == "learned" and res.t_evals == pytest.approx(41)
    t = np.asarray(res.t)
    assert t.min() >= 0.05 and t.max() <= 0.7
    # loose check (ULA is biased at O(h); the learned t-move is approximate): 0.15 in each coordinate
    assert np.all(np.abs(np.asarray(res.samples).mean(0) - np.asarray(mixture_2d.mean())) < 0.15)


# ------------------------------------------------------------------------------------------------
# diagnostics
def test_diagnostics_converged_single_gaussian():
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[0.5, -0.5]]), jnp.array([[0.4, 0.6]]))
    res = dmcmc.dlg(
        jax.random.PRNGKey(0), PROC, gm.score_fn(PROC), (2,), logdensity_fn=gm.logdensity_fn(PROC), num_chains=4,
        num_samples=300, burn_in=100, t_move=dmcmc.NoiseGrid(num_levels=32), denoise=dmcmc.Denoise(num_steps=2),
    )
    idata = res.to_inference_data()
    assert idata.posterior["t"].shape == (4, 300) and idata.posterior["x"].shape == (4, 300, 2)
    assert "acceptance" in idata.sample_stats and res.to_inference_data(max_coords=1).posterior["x"].shape == (4, 300, 1)
    d = dmcmc.diagnostics(res)
    assert d.rhat_t < 1.05 and d.rhat_x_max < 1.05
    assert 50 < d.ess_t <= 4 * 300 * 2 and 50 < d.ess_x_min
    # chains stuck at different noise levels (no t-moves possible on a 2-point grid with a far x)
    # are flagged: force disagreement by giving chains different, frozen t via a tiny range each
    t_split = np.concatenate([np.full((2, 300), 0.1), np.full((2, 300), 0.4)])
    stuck = res._replace(t=jnp.asarray(t_split + 0.01 * np.random.default_rng(0).normal(size=t_split.shape)))
    assert dmcmc.diagnostics(stuck).rhat_t > 1.5


# ------------------------------------------------------------------------------------------------
# errors
def _call(gm, **kw):
    args = dict(logdensity_fn=gm.logdensity_fn(PROC), num_chains=2, num_samples=1, burn_in=1,
                t_move=dmcmc.NoiseGrid(num_levels=8), denoise=dmcmc.Denoise(num_steps=1))
    args.update(kw)
    return dmcmc.dlg(jax.random.PRNGKey(0), PROC, gm.score_fn(PROC), (2,), **args)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(t_move=dmcmc.NoiseGrid((0.5, 0.5))), "noise_range"),
        (dict(t_move=dmcmc.NoiseGrid((0.6, 0.2))), "noise_range"),
        (dict(t_move=dmcmc.NoiseGrid((0.02, 1.5))), "noise_range"),
        (dict(num_chains=0), "num_chains"),
        (dict(num_samples=0), "num_samples"),
        (dict(thin=0), "thin"),
        (dict(burn_in=-1), "burn_in"),
        (dict(denoise=dmcmc.Denoise(num_steps=0)), "denoise.num_steps"),
        (dict(t_move=dmcmc.NoiseGrid(num_levels=1)), "num_levels"),
        (dict(x_move="nuts"), "x_move"),
        (dict(logdensity_fn=None, x_move=smc.mala(0.1)), "logdensity_fn"),
        (dict(logdensity_fn=None, x_move=smc.langevin(0.1)), "logdensity_fn"),
        (dict(denoise=dmcmc.Denoise("rk4")), "denoise.integrator"),
        (dict(denoise=dmcmc.Denoise(grid="cubic")), "denoise.grid"),
        (dict(t_move=dmcmc.NoiseGrid((0.01, 0.5)), denoise=dmcmc.Denoise(t_min=0.02)), "denoise.t_min"),
        (dict(x_init=jnp.zeros((3, 2))), "x_init"),
    ],
)
def test_invalid_arguments_raise(mixture_2d, kw, name):
    with pytest.raises(ValueError, match=name):
        _call(mixture_2d, **kw)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_invalid_step_scale_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        dmcmc.noise_scaled_step(PROC, scale)


def test_estimator_shape_mismatch_raises(mixture_2d):
    est = dmcmc.NoiseLevelEstimator(
        [(jnp.zeros((4, 8)), jnp.zeros(8))], *dmcmc.NoiseGrid((0.1, 0.5), 8).nodes(), (3,)
    )
    with pytest.raises(ValueError, match="t_move"):
        _call(mixture_2d, logdensity_fn=None, t_move=est)
    with pytest.raises(ValueError, match="data"):
        dmcmc.train_noise_estimator(jax.random.PRNGKey(0), PROC, jnp.zeros((5,)), dmcmc.NoiseGrid((0.1, 0.5)))


def test_dlg_checkpoint_resume_equals_uninterrupted_bitwise(tmp_path, monkeypatch):
    """Interrupted after 2 chunks, resumed: bitwise the uninterrupted dlg() run; a changed key is named."""
    from probkit import _io
    from probkit.diffusion import VP
    from probkit.dmcmc import checkpoint as dck
    from probkit.models import GaussianMixture

    proc = VP()
    gm = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.0, 0.0], [1.0, 0.5]]), jnp.full((2, 2), 0.3))
    score = gm.score_fn(proc)
    kw = dict(logdensity_fn=gm.logdensity_fn(proc), num_chains=4, num_samples=3, burn_in=4, thin=2,
              denoise=dmcmc.Denoise(num_steps=2), t_move=dmcmc.NoiseGrid(num_levels=8))
    ref = dmcmc.dlg(jax.random.PRNGKey(0), proc, score, (2,), **kw)
    write, calls = _io.write_files, []

    def stop_after_two(*a, **k):
        write(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(dck._io, "write_files", stop_after_two)
    path = tmp_path / "dlg"
    with pytest.raises(KeyboardInterrupt):
        dck.dlg_checkpointed(jax.random.PRNGKey(0), proc, score, (2,), checkpoint=path, checkpoint_every=3, **kw)
    assert dck.read_dlg_checkpoint_metadata(path)["sweep"] == 6
    monkeypatch.setattr(dck._io, "write_files", write)
    out = dck.dlg_checkpointed(jax.random.PRNGKey(0), proc, score, (2,), checkpoint=path, checkpoint_every=3, **kw)
    assert dck.read_dlg_checkpoint_metadata(path)["sweep"] == 10
    for f in ("samples", "x", "t", "t_trace", "acceptance", "acceptance_rate"):
        assert np.asarray(getattr(out, f)).tobytes() == np.asarray(getattr(ref, f)).tobytes(), f
    with pytest.raises(ValueError, match="`key`"):
        dck.dlg_checkpointed(jax.random.PRNGKey(1), proc, score, (2,), checkpoint=path, checkpoint_every=3, **kw)
    with pytest.raises(ValueError, match="checkpoint_every"):
        dck.dlg_checkpointed(jax.random.PRNGKey(0), proc, score, (2,), checkpoint=path, checkpoint_every=0, **kw)
