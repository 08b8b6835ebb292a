"""Tests of the generic Feynman-Kac engine (probkit.smc.feynman_kac) and its correctors.

Reference problem: prior N(0, I_2), likelihood y ~ N(x, s^2 I) with s = 0.5, tempered along
t: 1 -> 0 (gamma_t = prior * lik^(1-t)). Exact posterior N(y/(1+s^2), s^2/(1+s^2) I) =
N(0.8 y, 0.2 I); exact evidence Z = N(y; 0, (1+s^2) I) * 2 pi s^2 (the likelihood is not a
normalised density in x).
"""
import functools
import math
import os
import subprocess
import sys
import textwrap

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probkit.smc import (
    FeynmanKacModel,
    MoveTarget,
    SMCConfig,
    WeightedParticles,
    hmc,
    langevin,
    mala,
    run_smc,
    smc_init,
    smc_step,
)

Y = jnp.array([1.0, -0.5])
S2 = 0.25
POST_MEAN = np.asarray(Y) / (1 + S2)
POST_VAR = S2 / (1 + S2)
LOG_Z = float(-0.5 * jnp.sum(Y**2) / (1 + S2) - math.log(2 * math.pi * (1 + S2)) + math.log(2 * math.pi * S2))
TS = jnp.linspace(1.0, 0.0, 21)


def log_prior(x):
    return -0.5 * jnp.sum(x**2)


def log_lik(x):
    return -0.5 * jnp.sum((Y - x) ** 2) / S2


def log_target(x, t):
    return log_prior(x) + (1.0 - t) * log_lik(x)


def _mala_transition(key, t, t_next, x):
    alg = blackjax.mala(lambda z: log_target(z, t_next), step_size=0.1)

    def body(state, k):
        return alg.step(k, state)[0], None

    state, _ = jax.lax.scan(body, alg.init(x), jax.random.split(key, 5))
    return state.position


def _tempered_potential(t, t_next, x_prev, x_new):
    return (t - t_next) * log_lik(x_prev)


TEMPERED = FeynmanKacModel(
    init=lambda key: jax.random.normal(key, (2,)),
    transition=_mala_transition,
    log_potential=_tempered_potential,
)
TARGET = MoveTarget(log_target)  # what the correctors move on

# Identity-transition model for checking the weight and evidence bookkeeping exactly.
STATIC = FeynmanKacModel(
    init=lambda key: jax.random.normal(key, (2,)),
    transition=lambda key, t, t_next, x: x,
    log_potential=_tempered_potential,
)


def _check_posterior(out: WeightedParticles, n_eff_floor: float):
    """Weighted mean within 5 MC standard errors: se = sqrt(POST_VAR / ESS) with ESS >= n_eff_floor."""
    mean = np.asarray(out.weighted_mean())
    se = math.sqrt(POST_VAR / n_eff_floor)
    np.testing.assert_allclose(mean, POST_MEAN, atol=5 * se + 1e-3)
    var = np.asarray(jnp.sum(out.weights[:, None] * (out.particles - mean) ** 2, axis=0))
    # relative sd of a variance estimate ~ sqrt(2/ESS); allow 6 of them plus MCMC/discretisation slack
    np.testing.assert_allclose(var, POST_VAR, rtol=6 * math.sqrt(2 / n_eff_floor) + 0.03)


@pytest.mark.parametrize(
    "resampling",
    ["systematic", pytest.param("residual", marks=pytest.mark.slow), pytest.param("multinomial", marks=pytest.mark.slow), pytest.param("stratified", marks=pytest.mark.slow)],
)
def test_tempered_posterior_and_evidence(resampling):
    out = run_smc(jax.random.PRNGKey(1), TEMPERED, 4096, TS, resampling=resampling, ess_threshold=0.9)
    assert out.particles.shape == (4096, 2)
    assert out.log_weights.shape == (4096,)
    assert out.ess.shape == out.resampled.shape == out.log_weight_spread.shape == (20,)
    assert bool(np.any(out.resampled))
    np.testing.assert_allclose(float(jax.nn.logsumexp(out.log_weights)), 0.0, atol=1e-5)
    _check_posterior(out, 1000.0)
    # log Z-hat: relative variance of Z-hat ~ (chi^2 between consecutive targets)/N, tiny here;
    # 0.05 is > 10 standard deviations observed over seeds.
    assert abs(float(out.log_evidence) - LOG_Z) < 0.05


def test_evidence_exact_without_moves():
    """With identity transitions and no resampling, log Z-hat = log mean exp(log_lik) exactly."""
    key = jax.random.PRNGKey(3)
    out = run_smc(key, STATIC, 2000, TS, ess_threshold=0.0)
    x0 = jax.vmap(STATIC.init)(jax.random.split(jax.random.split(key)[0], 2000))
    expected = jax.nn.logsumexp(jax.vmap(log_lik)(x0)) - math.log(2000)
    np.testing.assert_allclose(float(out.log_evidence), float(expected), rtol=1e-4, atol=1e-4)
    assert not bool(np.any(out.resampled))
    np.testing.assert_allclose(np.asarray(out.particles), np.asarray(x0))


def test_evidence_across_resampling_unbiased_over_seeds():
    """Always-resample vs never-resample: both unbiased for Z; check mean of Z-hat/Z over seeds."""
    for thr in (0.0, 1.0):
        run = jax.jit(jax.vmap(lambda k: run_smc(k, STATIC, 256, TS, ess_threshold=thr, check=False).log_evidence))
        log_z = np.asarray(run(jax.random.split(jax.random.PRNGKey(0), 200)))
        ratio = np.exp(log_z - LOG_Z)
        # Z-hat/Z has mean 1; its sd over 200 seeds of N = 256 is measured < 0.3 -> se < 0.03
        assert abs(ratio.mean() - 1.0) < 5 * ratio.std() / math.sqrt(200) + 0.01, (thr, ratio.mean())


def test_init_log_weight():
    """M_0 = N(0, 4 I) reweighted to N(0, I) by G_0 gives the same posterior and evidence."""
    model = TEMPERED._replace(
        init=lambda key: 2.0 * jax.random.normal(key, (2,)),
        init_log_weight=lambda x: -0.5 * jnp.sum(x**2) + 0.5 * jnp.sum(x**2) / 4.0 + 2 * math.log(2.0),
    )
    out = run_smc(jax.random.PRNGKey(2), model, 4096, TS, ess_threshold=0.9)
    _check_posterior(out, 1000.0)
    assert abs(float(out.log_evidence) - LOG_Z) < 0.06


def test_manual_loop_matches_run_smc():
    key = jax.random.PRNGKey(5)
    out = run_smc(key, TEMPERED, 512, TS, ess_threshold=0.7)
    k_init, k_run = jax.random.split(key)
    cfg = SMCConfig("systematic", 0.7)
    state = smc_init(k_init, TEMPERED, 512, cfg)
    step = jax.jit(lambda k, s, t, tn: smc_step(k, s, t, tn, TEMPERED, cfg))
    for k, t, tn in zip(jax.random.split(k_run, 20), TS[:-1], TS[1:]):
        state, info = step(k, state, t, tn)
    np.testing.assert_allclose(np.asarray(state.particles), np.asarray(out.particles), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(state.log_evidence), float(out.log_evidence), rtol=1e-5)


_ZERO_MODEL = FeynmanKacModel(
    init=lambda key: jnp.zeros((1,)),
    transition=lambda key, t, tn, p: p,
    log_potential=lambda t, tn, p, q: jnp.zeros(()),
)


@functools.partial(jax.jit, static_argnums=0)
def _resampled_means(method, x, lw, keys):
    """Mean of the particles after one forced-resampling engine step, for each key."""
    cfg = SMCConfig(method, 1.0)
    state = smc_init(keys[0], _ZERO_MODEL, x.shape[0], cfg)._replace(particles=x, log_weights=lw)
    return jax.vmap(lambda k: smc_step(k, state, 1.0, 0.5, _ZERO_MODEL, cfg)[0].particles.mean())(keys)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    spread=st.floats(0.0, 8.0),
    method=st.sampled_from(["systematic", "multinomial", "stratified", "residual"]),
)
def test_resampling_keeps_weighted_mean_unbiased(seed, spread, method):
    """E[mean of resampled particles] = sum_i W_i x_i (over resampling randomness)."""
    n, reps = 64, 2000
    kx, kw, kr = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(kx, (n, 1))
    lw = spread * jax.random.normal(kw, (n,))
    lw = lw - jax.nn.logsumexp(lw)
    means = np.asarray(_resampled_means(method, x, lw, jax.random.split(kr, reps)), dtype=np.float64)
    w = np.exp(np.asarray(lw, np.float64))
    w /= w.sum()
    target = float(w @ np.asarray(x[:, 0], np.float64))
    var_w = float(w @ (np.asarray(x[:, 0], np.float64) - target) ** 2)
    # multinomial variance of one resampled mean is var_w / n; the others are no larger.
    se = math.sqrt(var_w / n / reps)
    assert abs(means.mean() - target) < 6 * se + 1e-4


def test_extreme_log_weights():
    """Log-weight spread of 1e4: no overflow or NaN, evidence = exact logsumexp."""
    n = 1000
    model = FeynmanKacModel(
        init=lambda key: jax.random.uniform(key, (1,)),
        transition=lambda key, t, tn, x: x,
        log_potential=lambda t, tn, xp, xn: 1e4 * xp[0] + 5e3,
    )
    out = run_smc(jax.random.PRNGKey(0), model, n, jnp.array([1.0, 0.5]), ess_threshold=0.0)
    assert np.all(np.isfinite(np.asarray(out.log_weights)) | (np.asarray(out.log_weights) == -np.inf))
    assert np.isfinite(float(out.log_evidence)) and np.isfinite(float(out.ess[0]))
    assert 1.0 <= float(out.ess[0]) < 5.0
    assert float(out.log_weight_spread[0]) > 9000.0
    x = np.asarray(out.particles[:, 0], np.float64)
    expected = np.logaddexp.reduce(1e4 * x + 5e3) - math.log(n)
    np.testing.assert_allclose(float(out.log_evidence), expected, rtol=1e-5)
    # The heaviest particle carries nearly all the weight.
    assert int(np.argmax(np.asarray(out.log_weights))) == int(np.argmax(x))
    # Resampling at this spread stays finite too.
    out = run_smc(jax.random.PRNGKey(0), model, n, jnp.array([1.0, 0.5, 0.2]), ess_threshold=1.0)
    assert np.all(np.isfinite(np.asarray(out.particles)))
    assert np.all(np.isfinite(np.asarray(out.log_weights)))


def test_all_minus_inf_raises():
    model = STATIC._replace(log_potential=lambda t, tn, xp, xn: jnp.where(t < 0.5, -jnp.inf, 0.0))
    with pytest.raises(ValueError, match="zero weight at step 11"):
        run_smc(jax.random.PRNGKey(0), model, 64, TS)


def test_partial_minus_inf_is_fine():
    model = STATIC._replace(log_potential=lambda t, tn, xp, xn: jnp.where(xp[0] > 0, -jnp.inf, 0.0))
    out = run_smc(jax.random.PRNGKey(0), model, 256, TS, ess_threshold=0.0)
    assert np.all(np.asarray(out.particles)[np.isfinite(np.asarray(out.log_weights)), 0] <= 0)


def test_nonfinite_score_raises():
    def transition(key, t, t_next, x):
        score = jnp.where(t < 0.3, jnp.nan, -x)  # a "network" that returns NaN late in the run
        return x + (t - t_next) * score

    model = STATIC._replace(transition=transition)
    with pytest.raises(ValueError, match="non-finite"):
        run_smc(jax.random.PRNGKey(0), model, 64, TS)
    model = STATIC._replace(log_potential=lambda t, tn, xp, xn: jnp.where(t < 0.3, jnp.nan, 0.0))
    with pytest.raises(ValueError, match="non-finite"):
        run_smc(jax.random.PRNGKey(0), model, 64, TS)


def test_minus_inf_in_a_cached_field_is_not_an_error():
    """A zero-weight particle caching its log-potential -inf is fine; only positions are checked."""

    def init(key):
        x = jax.random.normal(key, (2,))
        return {"x": x, "logg": jnp.zeros(())}

    def transition(key, t, t_next, p):
        x = p["x"] + 0.1 * jax.random.normal(key, (2,))
        return {"x": x, "logg": jnp.where(x[0] > 0, -jnp.inf, 0.0)}

    model = FeynmanKacModel(init=init, transition=transition, log_potential=lambda t, tn, prev, new: new["logg"])
    target = MoveTarget(position=lambda p: p["x"])
    out = run_smc(jax.random.PRNGKey(0), model, 64, TS[:4], target=target, ess_threshold=0.0)
    assert np.all(np.isfinite(np.asarray(out.particles)))
    bad = model._replace(transition=lambda k, t, tn, p: {"x": jnp.where(t < 0.97, jnp.nan, p["x"]), "logg": p["logg"]})
    with pytest.raises(ValueError, match="non-finite values at step"):
        run_smc(jax.random.PRNGKey(0), bad, 64, TS[:4], target=target)


def test_nan_init_log_weight_and_init_named():
    with pytest.raises(ValueError, match="init_log_weight"):
        run_smc(jax.random.PRNGKey(0), STATIC._replace(init_log_weight=lambda x: jnp.nan * x[0]), 8, TS[:3])
    with pytest.raises(ValueError, match="`init`"):
        run_smc(jax.random.PRNGKey(0), STATIC._replace(init=lambda k: jnp.full((2,), jnp.inf)), 8, TS[:3])


def test_health_summary_and_degenerate_warning():
    import warnings

    out = run_smc(jax.random.PRNGKey(0), STATIC, 64, TS)
    h = out.health()
    assert set(h) >= {"min_ess", "num_resamplings", "max_log_weight_spread", "final_ess"}
    assert 1.0 <= h["min_ess"] <= 64 and h["num_resamplings"] == int(np.sum(np.asarray(out.resampled)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy run does not warn
        run_smc(jax.random.PRNGKey(0), STATIC, 64, TS)
    # the whole likelihood in one step, with a sharp likelihood: the weights collapse
    sharp = STATIC._replace(log_potential=lambda t, tn, xp, xn: -0.5 * jnp.sum((xn - Y) ** 2) / 1e-4)
    with pytest.warns(RuntimeWarning, match="degenerate SMC run: min ESS"):
        out = run_smc(jax.random.PRNGKey(0), sharp, 64, jnp.array([1.0, 0.0]))
    assert out.health()["min_ess"] < 5


def test_pytree_particles_with_event_shape_and_cache():
    """Particles as a dict with an image-shaped position and a cached per-particle quantity."""

    def init(key):
        x = jax.random.normal(key, (3, 4))
        return {"x": x, "cache": jnp.sum(x**2)}

    def transition(key, t, t_next, p):
        x = p["x"] * 0.9 + 0.1 * jax.random.normal(key, (3, 4))
        return {"x": x, "cache": jnp.sum(p["x"] ** 2)}  # cached at the previous point

    model = FeynmanKacModel(
        init=init,
        transition=transition,
        log_potential=lambda t, tn, prev, new: -0.01 * new["cache"],
    )
    target = MoveTarget(lambda x, t: -0.5 * jnp.sum(x**2), position=lambda p: p["x"],
                        set_position=lambda p, x, t: {"x": x, "cache": p["cache"]})
    out = run_smc(jax.random.PRNGKey(0), model, 128, TS, target=target, corrector=mala(0.1))
    # the engine returns the positions (target.position), not the cache
    assert out.particles.shape == (128, 3, 4)
    assert out.corrector == "mala"
    assert out.resample(jax.random.PRNGKey(1), 10).shape == (10, 3, 4)
    idata = out.to_inference_data()
    assert idata.posterior["x"].shape == (1, 128, 3, 4)


@pytest.mark.parametrize(
    "corrector,name,nfe",
    [(mala(0.05, 2), "mala", 3), (hmc(0.1, 4), "hmc", 5), (langevin(0.01, 2), "langevin", 2)],
)
def test_correctors_keep_the_target(corrector, name, nfe):
    """Identity transitions + resampling + correctors: the correctors alone must move the
    particles to the tempered targets (without them, 20 resamplings of the prior draws collapse)."""
    out = run_smc(jax.random.PRNGKey(4), STATIC, 2048, TS, target=TARGET, ess_threshold=0.9, corrector=corrector,
                  nfe_per_step=0)
    assert out.corrector == name and out.nfe == 20 * nfe
    acc = np.asarray(out.acceptance)
    assert np.all((acc > 0.3) & (acc <= 1.0))
    mean = np.asarray(out.weighted_mean())
    np.testing.assert_allclose(mean, POST_MEAN, atol=0.05)
    # Unadjusted Langevin with h = 0.01 has O(h) variance bias (~2%); MH moves have none.
    var = np.asarray(jnp.sum(out.weights[:, None] * (out.particles - mean) ** 2, axis=0))
    np.testing.assert_allclose(var, POST_VAR, rtol=0.15)
    assert np.unique(np.asarray(out.particles[:, 0])).size > 1500  # rejuvenated, not collapsed


def test_user_model_with_blackjax_nuts_corrector():
    """A user's FeynmanKacModel (init/transition/log_potential only) + any BlackJAX kernel
    (NUTS) as the corrector, bound to a MoveTarget: the moves alone reach the posterior, and
    the identity transitions leave the evidence exact."""
    from probkit.smc import from_blackjax

    nuts = from_blackjax(blackjax.nuts, step_size=0.3, inverse_mass_matrix=jnp.ones(2), nfe=8)
    assert nuts.name == "nuts" and nuts.adjusted
    out = run_smc(jax.random.PRNGKey(5), STATIC, 1024, TS, target=MoveTarget(log_target), ess_threshold=0.9,
                  corrector=nuts, nfe_per_step=0)
    assert out.corrector == "nuts" and out.nfe == 20 * 8
    assert np.all(np.asarray(out.acceptance) > 0.5)
    np.testing.assert_allclose(np.asarray(out.weighted_mean()), POST_MEAN, atol=0.06)
    log_z = float(jax.scipy.stats.multivariate_normal.logpdf(Y, jnp.zeros(2), (1 + S2) * jnp.eye(2))
                  + jnp.log(2 * jnp.pi * S2))
    assert abs(float(out.log_evidence) - log_z) < 0.1
    assert np.unique(np.asarray(out.particles[:, 0])).size > 700


def test_resample_and_inference_data():
    out = run_smc(jax.random.PRNGKey(1), TEMPERED, 1024, TS)
    draws = out.resample(jax.random.PRNGKey(0), 300, method="multinomial")
    assert draws.shape == (300, 2)
    idata = out.to_inference_data()
    assert idata.posterior["x"].shape == (1, 1024, 2)
    np.testing.assert_allclose(np.exp(idata.sample_stats["log_weight"].values).sum(), 1.0, rtol=1e-5)
    assert "ess" in idata.smc_history and idata.smc_history["ess"].shape == (20,)
    assert idata.sample_stats.attrs["log_evidence"] == pytest.approx(float(out.log_evidence))
    with pytest.raises(ValueError, match="`n`"):
        out.resample(jax.random.PRNGKey(0), 0)


def test_inference_data_honours_var_name_and_carries_weights_ess_evidence():
    """``WeightedParticles.to_inference_data`` delegates to ``probkit.diagnostics`` with every
    argument: the posterior is named ``var_name``; weights, Kish ESS and log-evidence are in
    ``sample_stats``; ``key`` / ``num_draws`` resample for export."""
    from probkit.diagnostics import kish_ess, to_inference_data

    out = run_smc(jax.random.PRNGKey(1), TEMPERED, 512, TS)
    idata = out.to_inference_data(var_name="theta")
    assert list(idata.posterior.data_vars) == ["theta"] and idata.posterior["theta"].shape == (1, 512, 2)
    np.testing.assert_allclose(idata.posterior["theta"].values[0], np.asarray(out.particles))
    stats = idata.sample_stats
    np.testing.assert_allclose(stats["log_weight"].values[0], np.asarray(out.log_weights), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["weight"].values[0], np.asarray(out.weights), rtol=1e-5, atol=1e-9)
    assert stats.attrs["final_ess"] == pytest.approx(kish_ess(out.log_weights), rel=1e-6)
    assert stats.attrs["log_evidence"] == pytest.approx(float(out.log_evidence))
    assert stats.attrs["nfe"] == out.nfe and stats.attrs["num_steps"] == 20 and stats.attrs["corrector"] == "none"
    np.testing.assert_allclose(idata.smc_history["ess"].values, np.asarray(out.ess))
    # the method and the diagnostics function are one implementation
    same = to_inference_data(out, "theta")
    np.testing.assert_array_equal(same.sample_stats["log_weight"].values, stats["log_weight"].values)
    # keyword arguments pass through: resampled export under the chosen name
    draws = out.to_inference_data("z", key=jax.random.PRNGKey(2), num_draws=100, resampling="multinomial")
    assert draws.posterior["z"].shape == (1, 100, 2) and draws.sample_stats.attrs["resampled_for_export"] == 1
    np.testing.assert_allclose(draws.sample_stats["weight"].values, 1 / 100)
    # pytree particles: leaves are named after var_name
    tree = out._replace(particles={"a": out.particles, "b": out.particles[:, 0]})
    assert set(tree.to_inference_data("theta").posterior.data_vars) == {"theta_a", "theta_b"}


def test_import_smc_does_not_import_arviz_or_matplotlib():
    code = (
        "import sys, probkit.smc, probkit.fkc, probkit.inverse, probkit.dmcmc, probkit.privacy; "
        "bad = [m for m in ('arviz', 'xarray', 'matplotlib') if m in sys.modules]; assert not bad, bad"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_value_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="num_particles"):
        run_smc(key, TEMPERED, 0, TS)
    with pytest.raises(ValueError, match="`ts`"):
        run_smc(key, TEMPERED, 8, TS[::-1])
    with pytest.raises(ValueError, match="`ts`"):
        run_smc(key, TEMPERED, 8, jnp.array([1.0]))
    with pytest.raises(ValueError, match="resampling"):
        run_smc(key, TEMPERED, 8, TS, resampling="bogus")
    with pytest.raises(ValueError, match="ess_threshold"):
        run_smc(key, TEMPERED, 8, TS, ess_threshold=1.5)
    with pytest.raises(ValueError, match="logdensity_fn"):
        run_smc(key, TEMPERED, 8, TS, corrector=mala(0.1))
    with pytest.raises(ValueError, match="step_size"):
        mala(-1.0)
    with pytest.raises(ValueError, match="num_integration_steps"):
        hmc(0.1, 0)


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    import tests.test_smc_engine as T
    from probkit.smc import run_smc, mala
    assert jax.device_count() == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("p",))
    sh = NamedSharding(mesh, PartitionSpec("p"))
    key = jax.random.PRNGKey(7)
    for corr in (mala(0.05),):
        a = run_smc(key, T.TEMPERED, 1024, T.TS, target=T.TARGET, ess_threshold=0.9, corrector=corr)
        b = run_smc(key, T.TEMPERED, 1024, T.TS, target=T.TARGET, ess_threshold=0.9, corrector=corr, sharding=sh)
        assert len(b.particles.sharding.device_set) == 4, b.particles.sharding
        np.testing.assert_array_equal(np.asarray(a.resampled), np.asarray(b.resampled))
        np.testing.assert_allclose(np.asarray(a.ess), np.asarray(b.ess), rtol=1e-4)
        np.testing.assert_allclose(np.asarray(a.particles), np.asarray(b.particles), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(float(a.log_evidence), float(b.log_evidence), rtol=1e-5, atol=1e-5)
    print("SHARDED-OK")
    """
)


def test_sharded_particles_match_single_device():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "SHARDED-OK" in proc.stdout, proc.stderr[-3000:]
