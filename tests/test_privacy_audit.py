"""Simulated audits, the multi-sample heuristic, the accountant and the DP-SGD audit; the CLI."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probkit.cli import main
from probkit.privacy import (
    DPSGDConfig,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    accountant_epsilon,
    best_threshold,
    counts_from_scores,
    dpsgd_audit,
    epsilon_from_rates,
    gdp_epsilon,
    multi_sample_counts,
    simulate_counts,
    simulate_scores,
)
from probkit.privacy.dpsgd import DPSGDState, _loss, dpsgd_optimizer, dpsgd_step


@pytest.mark.parametrize("mech,t", [(GaussianMechanism(1.3), 0.4), (LaplaceMechanism(1.0), 0.7), (RandomizedResponse(1.5), 0.5)])
def test_simulated_counts_match_rates(mech, t):
    n, reps = 400, 3000
    fpr, fnr = (float(r) for r in mech.rates(t))
    c = simulate_counts(jax.random.PRNGKey(0), mech, n, n, t, reps)
    # mean of reps binomials: sd = sqrt(p (1 - p) / (n reps)); 5 sd
    for counts, p in ((c.fp, fpr), (c.fn, fnr)):
        assert abs(float(jnp.mean(counts)) / n - p) <= 5 * np.sqrt(p * (1 - p) / (n * reps)) + 1e-9
    # Raw scores thresholded give the same rates.
    neg, pos = simulate_scores(jax.random.PRNGKey(1), mech, 200_000, 200_000)
    cs = counts_from_scores(neg, pos, t)
    for k, nn, p in ((cs.fp, cs.n_negative, fpr), (cs.fn, cs.n_positive, fnr)):
        assert abs(float(k) / nn - p) <= 5 * np.sqrt(p * (1 - p) / nn) + 1e-9


def test_mechanism_epsilons_and_best_threshold():
    with jax.enable_x64(True):
        g = GaussianMechanism(1.0)
        t = best_threshold(g, 1e-2)
        fpr, fnr = g.rates(t)
        np.testing.assert_allclose(float(epsilon_from_rates(float(fpr), float(fnr), 1e-2)), g.epsilon(1e-2), rtol=1e-3)
        np.testing.assert_allclose(g.epsilon(1e-2), float(gdp_epsilon(1e-2, 1.0)), rtol=1e-6)
    rr = RandomizedResponse(1.5)
    fpr, fnr = rr.rates(best_threshold(rr, 1e-9))
    np.testing.assert_allclose(float(epsilon_from_rates(fpr, fnr, 1e-6)), 1.5, rtol=1e-4)
    np.testing.assert_allclose(LaplaceMechanism(1.2).epsilon(1e-9), 1.2, rtol=1e-3)
    assert LaplaceMechanism(1.2).epsilon(0.1) < 1.2


def test_multi_sample_heuristic():
    mech, t = GaussianMechanism(1.0), 0.5
    fpr, fnr = (float(r) for r in mech.rates(t))
    c = multi_sample_counts(jax.random.PRNGKey(0), mech, 2000, 50, t)
    assert c.n_negative + c.n_positive == 100_000
    for k, nn, p in ((c.fp, c.n_negative, fpr), (c.fn, c.n_positive, fnr)):
        assert abs(k / nn - p) <= 5 * np.sqrt(p * (1 - p) / nn)
    # Shared noise (rho = 0.5) keeps the marginal rates but makes pooled counts overdispersed:
    # across 200 repetitions of 20 models x 50 canaries the variance of fp / n_negative is far
    # above the binomial p (1 - p) / n (design effect 1 + (k - 1) * corr ~ 10 for these values).
    def fp_rate(rho):
        cc = multi_sample_counts(jax.random.PRNGKey(1), mech, 20, 50, t, correlation=rho, num_audits=200)
        return np.asarray(cc.fp) / np.asarray(cc.n_negative)

    r0, r5 = fp_rate(0.0), fp_rate(0.5)
    assert abs(r5.mean() - fpr) < 5 * r5.std() / np.sqrt(200)
    assert r5.var() > 4 * r0.var()
    with pytest.raises(ValueError, match="correlation"):
        multi_sample_counts(jax.random.PRNGKey(0), mech, 10, 5, t, correlation=1.0)


def test_accountant_bounds_exact_gaussian():
    # One full-batch step of the Gaussian mechanism with noise multiplier sigma is exactly
    # (1/sigma)-GDP: the PLD accountant matches the closed form, and RDP is an upper bound.
    sigma, delta = 1.0, 1e-5
    exact = float(gdp_epsilon(delta, 1.0 / sigma))
    pld = accountant_epsilon(sigma, 1.0, 1, delta, "pld")
    rdp = accountant_epsilon(sigma, 1.0, 1, delta, "rdp")
    np.testing.assert_allclose(pld, exact, rtol=0.02)
    assert rdp >= exact - 1e-6
    assert accountant_epsilon(2.0, 0.1, 100, delta) < accountant_epsilon(1.0, 0.1, 100, delta)
    for kwargs, name in ((dict(noise_multiplier=0.0), "noise_multiplier"), (dict(sampling_rate=1.5), "sampling_rate"),
                         (dict(steps=0), "steps"), (dict(delta=0.0), "pure DP"), (dict(delta=-1.0), "delta"),
                         (dict(accountant="prv"), "accountant")):
        args = dict(noise_multiplier=1.0, sampling_rate=0.1, steps=10, delta=1e-5) | kwargs
        with pytest.raises(ValueError, match=name):
            accountant_epsilon(**args)


def test_dpsgd_step_clips_per_example():
    # With q = 1 and (almost) no noise, one step is SGD on the mean of per-example gradients,
    # each clipped to norm C: compare with a loop over examples.
    key = jax.random.PRNGKey(0)
    x = jax.random.uniform(key, (6, 64))
    y = jnp.arange(6) % 10
    params = {"w": 0.1 * jax.random.normal(jax.random.PRNGKey(1), (64, 10)), "b": jnp.zeros(10)}
    cfg = DPSGDConfig(num_train=6, sampling_rate=1.0, noise_multiplier=1e-9, clip_norm=0.5, learning_rate=0.3)
    opt = dpsgd_optimizer(cfg, jax.random.PRNGKey(5), 6)  # optax DP aggregate + scale + sgd
    present = jnp.array([True, True, True, True, False, True])
    step = jax.jit(lambda st: dpsgd_step(key, st, x, y, present, cfg, opt))
    new = step(DPSGDState(params, opt.init(params))).params
    want = jax.tree.map(jnp.zeros_like, params)
    grad = jax.jit(jax.grad(_loss))
    for i in range(6):
        if not bool(present[i]):
            continue
        g = grad(params, x[i], y[i])
        norm = jnp.sqrt(sum(jnp.sum(v**2) for v in jax.tree.leaves(g)))
        assert float(norm) > cfg.clip_norm  # clipping is active in this check
        want = jax.tree.map(lambda a, b: a + b * jnp.minimum(1.0, cfg.clip_norm / norm), want, g)
    want = jax.tree.map(lambda p, g: p - cfg.learning_rate * g / 6, params, want)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_dpsgd_noise_distribution():
    # With no example sampled, one step is pure noise: -lr * sigma * C * z / (q n) per coordinate,
    # z ~ N(0, 1) i.i.d. (optax's aggregate divides by the rows; the chain rescales to q n).
    cfg = DPSGDConfig(num_train=40, sampling_rate=0.25, noise_multiplier=1.7, clip_norm=0.8, learning_rate=0.5)
    x = jnp.zeros((40, 64))
    y = jnp.zeros(40, jnp.int32)
    params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}

    def one(k):
        opt = dpsgd_optimizer(cfg, k, 40)
        st = dpsgd_step(k, DPSGDState(params, opt.init(params)), x, y, jnp.zeros(40, bool), cfg, opt)
        return jnp.concatenate([st.params["w"].ravel(), st.params["b"]])

    z = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), 20))).ravel()
    sd = cfg.learning_rate * cfg.noise_multiplier * cfg.clip_norm / (cfg.sampling_rate * cfg.num_train)
    # 13000 draws: sd of the sample sd ~ 0.6%, of the mean ~ 0.9% of sd; 5 sd tolerances
    np.testing.assert_allclose(z.std(), sd, rtol=0.03)
    assert abs(z.mean()) < 0.05 * sd
    assert stats.kstest(z / sd, "norm").pvalue > 1e-3


def test_dpsgd_audit_small():
    cfg = DPSGDConfig(num_models=32, num_train=64, canaries_per_model=4, steps=20, sampling_rate=0.2,
                      noise_multiplier=1.0, learning_rate=1.0)
    res = dpsgd_audit(jax.random.PRNGKey(0), cfg)
    c = res.counts
    assert c.n_negative + c.n_positive == 16 * 4
    lo, hi = res.interval
    assert 0.0 <= lo <= res.posterior_mean <= hi
    assert res.clopper_pearson <= hi
    assert res.accountant_pld <= res.accountant_rdp
    assert 0.2 < res.test_accuracy <= 1.0  # the private models learn something (chance: 0.1)
    json.dumps(res.summary())
    with pytest.raises(ValueError, match="noise_multiplier"):
        dpsgd_audit(jax.random.PRNGKey(0), DPSGDConfig(noise_multiplier=-1.0))
    with pytest.raises(ValueError, match="num_models"):
        dpsgd_audit(jax.random.PRNGKey(0), DPSGDConfig(num_models=2))


def test_cli_privacy_estimate(tmp_path, capsys):
    png = tmp_path / "eps.png"
    rc = main(["privacy", "estimate", "--fp", "20", "--negatives", "1000", "--fn", "300", "--positives", "1000",
               "--delta", "1e-5", "--claimed-eps", "2", "--plot", str(png)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "credible interval" in out and "Clopper-Pearson" in out and "P(eps > 2)" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = main(["privacy", "estimate", "--fp", "20", "--negatives", "1000", "--fn", "300", "--positives", "1000",
               "--delta", "1e-5", "--level", "0.9", "--prior", "1,1", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["level"] == 0.9 and summary["interval"][0] < summary["mean"] < summary["interval"][1]
    assert summary["clopper_pearson_lower_bound"] < summary["interval"][1]
    # bad values: one-line error naming the argument, exit status 2 (probkit.cli)
    assert main(["privacy", "estimate", "--fp", "2000", "--negatives", "1000", "--fn", "3", "--positives", "10", "--delta", "1e-5"]) == 2
    assert "fp" in capsys.readouterr().err
    assert main(["privacy", "estimate", "--fp", "2", "--negatives", "10", "--fn", "3", "--positives", "10", "--delta", "2"]) == 2
    assert "delta" in capsys.readouterr().err


def test_chunked_training_matches_vmapped():
    # Training in chunks of models (lax.map with batch_size, for memory) gives the same models.
    from probkit.privacy import train_dpsgd_models

    x = jax.random.uniform(jax.random.PRNGKey(0), (12, 64))
    y = jnp.arange(12) % 10
    present = jax.random.bernoulli(jax.random.PRNGKey(1), 0.7, (8, 12))
    cfg = DPSGDConfig(num_models=8, num_train=12, steps=3, sampling_rate=0.5)
    full = train_dpsgd_models(jax.random.PRNGKey(2), cfg, x, y, present)
    chunked = train_dpsgd_models(jax.random.PRNGKey(2), DPSGDConfig(num_models=8, num_train=12, steps=3, sampling_rate=0.5,
                                                                      model_batch=3), x, y, present)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(chunked)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_per_canary_standardisation_uses_calibration_half_only():
    from probkit.privacy.dpsgd import _standardise_per_canary

    rng = np.random.default_rng(0)
    score = rng.normal(size=(40, 3)) * np.array([1.0, 5.0, 0.2]) + np.array([0.0, -3.0, 10.0])
    member = rng.random((40, 3)) < 0.5
    z = _standardise_per_canary(score, member, 20)
    for c in range(3):
        ref = z[:20][~member[:20, c], c]
        np.testing.assert_allclose([ref.mean(), ref.std(ddof=1)], [0.0, 1.0], atol=1e-12)
    changed = score.copy()
    changed[20:] += 100.0  # audit half: no influence on the calibration statistics
    np.testing.assert_allclose(_standardise_per_canary(changed, member, 20)[:20], z[:20])
