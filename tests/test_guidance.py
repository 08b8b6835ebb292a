"""Classifier-free guidance with Feynman-Kac correctors (probkit.fkc.cfg) against an exact target,
and the class-conditional score network of probkit.models.conditional.

Exact target. A 2-D class-conditional Gaussian mixture: class 0 has modes A = (-2.5, 0) and
B = (1.5, 1), class 1 one mode C = (2, -0.5) overlapping B; p_u = (p_0 + p_1) / 2. Guidance
w = 3 towards class 0 targets q ∝ p_u^(1-w) p_0^w = p_0 (2 p(0|x))^(w-1) (at t_min), which moves
mass from B (where class 1 competes) to A. q is integrated on a 601^2 grid.

Tolerances (measured, N = 4096, 200 steps, eta = 1): over 6 seeds the FKC estimates have
standard deviations 0.09 (mean of x_0), 0.22 (var of x_0), 0.025 (mass of mode A, x_0 < 0);
the 4-seed averages sat within 2 such standard errors of the grid values. The test averages 4
seeds and allows 4 standard errors (0.2, 0.45, 0.05 for these three statistics). Plain CFG (the
same proposal without weights) gives mass(A) = 0.81 and mean(x_0) = -1.9 against the exact 0.673
and -1.204: errors of 3x and 3.5x those tolerances, and the test asserts they exceed them.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit import fkc
from probkit.diffusion import VP
from probkit.models import GaussianMixture
from probkit.models import conditional as C

PROC = VP()
TMIN = PROC.t_min
W = 3.0
N, STEPS, SEEDS = 4096, 200, 4
MEANS = jnp.array([[-2.5, 0.0], [1.5, 1.0], [2.0, -0.5]])
COVS = jnp.array([[0.5, 0.5], [0.6, 0.6], [0.8, 0.8]])
P0 = GaussianMixture(jnp.array([0.5, 0.5]), MEANS[:2], COVS[:2])
PU = GaussianMixture(jnp.array([0.25, 0.25, 0.5]), MEANS, COVS)
TOL = np.array([0.2, 0.45, 0.05])  # mean x0, var x0, mass of mode A


def _stats(x, w):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    w = w / w.sum()
    mu = w @ x[:, 0]
    return np.array([mu, w @ (x[:, 0] - mu) ** 2, w @ (x[:, 0] < 0)])


def _exact():
    g = np.linspace(-9, 9, 601)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lp = sum(b * np.asarray(jax.vmap(m.noised(PROC, TMIN).log_prob)(jnp.asarray(pts)), np.float64)
             for b, m in ((1.0 - W, PU), (W, P0)))
    dens = np.exp(lp - lp.max())
    return _stats(pts, dens), lp, (g[1] - g[0]) ** 2


def test_fkc_cfg_matches_geometric_target_and_plain_cfg_does_not():
    exact, lp, cell = _exact()

    def run(key):
        out = fkc.cfg(key, PROC, PU.score_fn(PROC), P0.score_fn(PROC), W, N, STEPS, shape=(2,),
                      logdensity_fns=(PU.logdensity_fn(PROC), P0.logdensity_fn(PROC)))
        return out.particles, out.log_weights, out.log_evidence, out.ess

    xs, lws, logz, ess = jax.vmap(run)(jax.random.split(jax.random.PRNGKey(0), SEEDS))
    est = np.array([_stats(xs[s], np.exp(lws[s] - lws[s].max())) for s in range(SEEDS)])
    err = np.abs(est.mean(0) - exact)
    assert np.all(err < TOL), (est.mean(0), exact, est.std(0))
    assert float(np.min(ess)) > 0.05 * N  # the weights never degenerate on this target
    # log-evidence: log ∫ p_u^(1-w) p_0^w at t_min, by quadrature on the grid
    log_z = float(np.log(np.sum(np.exp(lp - lp.max()))) + lp.max() + np.log(cell))
    assert abs(float(np.mean(logz)) - log_z) < 0.1, (np.asarray(logz), log_z)

    plain = fkc.cfg(jax.random.PRNGKey(0), PROC, PU.score_fn(PROC), P0.score_fn(PROC), W, N, STEPS, shape=(2,),
                    weighted=False)
    p_err = np.abs(_stats(plain.particles, np.ones(N)) - exact)
    assert p_err[2] > 2 * TOL[2] and p_err[0] > 2 * TOL[0], (p_err, TOL)


# --------------------------------------------------------------------------- the network
def _small_model():
    return C.init_conditional_score_mlp(jax.random.PRNGKey(1), 6, 3, hidden=16, depth=1, time_dim=8, embed_dim=4)


def test_conditional_network_save_load_round_trip(tmp_path):
    params, config = _small_model()
    # a non-zero class embedding, so that labels matter
    params["class_emb"] = jax.random.normal(jax.random.PRNGKey(2), params["class_emb"].shape)
    params["net"]["out"]["w"] = jax.random.normal(jax.random.PRNGKey(3), params["net"]["out"]["w"].shape)
    files = C.save_conditional_score_model(tmp_path / "m", params, config, PROC, metadata={"note": "test"})
    assert all(os.path.exists(f) for f in files)
    p2, c2, proc2 = C.load_conditional_score_model(tmp_path / "m.npz")
    assert c2 == config and proc2 == PROC
    x = jnp.linspace(-1, 1, 6)
    call = jax.jit(lambda f, x: f(x, 0.3))  # one compilation for every label and both parameter sets
    for label in (0, 2, None):
        a = call(C.conditional_score_fn(params, config, PROC, label), x)
        b = call(C.conditional_score_fn(p2, c2, proc2, label), x)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    s0, s1 = (np.asarray(call(C.conditional_score_fn(params, config, PROC, c), x)) for c in (0, 1))
    assert np.abs(s0 - s1).max() > 1e-4  # the label changes the score
    assert C.read_model_metadata(tmp_path / "m")["note"] == "test"
    # a classifier round-trips too
    cp, cc = C.init_classifier(jax.random.PRNGKey(4), 6, 3, hidden=8)
    C.save_classifier(tmp_path / "c", cp, cc)
    cp2, cc2 = C.load_classifier(tmp_path / "c")
    assert cc2 == cc
    np.testing.assert_array_equal(np.asarray(C.classifier_logits(cp, cc, x)), np.asarray(C.classifier_logits(cp2, cc2, x)))
    # wrong format / tampered arrays are refused
    with pytest.raises(ValueError, match="path"):
        C.load_classifier(tmp_path / "m")
    np.savez(tmp_path / "m.npz", **{"class_emb": np.zeros((4, 8), np.float32)})
    with pytest.raises(ValueError, match="SHA-256"):  # the .json records the digest of its .npz
        C.load_conditional_score_model(tmp_path / "m")
    meta = json.loads((tmp_path / "m.json").read_text())
    del meta["npz_sha256"]  # a file from before digests were recorded: the arrays are still checked
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="missing"):
        C.load_conditional_score_model(tmp_path / "m")


def test_unknown_class_label_raises_value_error_naming_it():
    params, config = _small_model()
    for bad in (4, -1, 1.5, "a", True, 10):
        with pytest.raises(ValueError, match="`label`"):
            C.conditional_score_fn(params, config, PROC, bad)
    C.conditional_score_fn(params, config, PROC, 3)  # the null label (= num_classes) is the unconditional model
    with pytest.raises(ValueError, match="`labels`"):
        C.train_conditional_score_model(jax.random.PRNGKey(0), np.zeros((4, 6)), np.array([0, 1, 2, 5]), PROC, 1,
                                        num_classes=3)


def test_traced_params_and_label_compile_once():
    """The score function is a Partial whose params and label are traced: one compilation serves
    every label and every set of weights."""
    params, config = _small_model()
    traces = []

    @jax.jit
    def f(score_fn, x):
        traces.append(1)
        return score_fn(x, 0.5)

    x = jnp.ones(6)
    outs = [f(C.conditional_score_fn(params, config, PROC, c), x) for c in (0, 1, None)]
    p2 = jax.tree.map(lambda a: a + 0.01, params)
    outs.append(f(C.conditional_score_fn(p2, config, PROC, 2), x))
    assert len(traces) == 1 and all(o.shape == (6,) for o in outs)
    # an out-of-range traced label is not silently clipped: the output is NaN
    bad = jax.tree_util.Partial(C.conditional_score_fn(params, config, PROC, 0).func, params, jnp.asarray(7))
    assert np.all(np.isnan(np.asarray(f(bad, x))))


def test_shipped_digits_models_load():
    params, config, process = C.load_pretrained_conditional_digits()
    assert config.num_classes == 10 and config.event_shape == (64,) and isinstance(process, VP)
    clf_params, clf_cfg = C.load_pretrained_digits_classifier()
    _, _, x_te, y_te = C.load_digits_split()
    acc = float((np.asarray(C.classifier_logits(clf_params, clf_cfg, x_te)).argmax(-1) == y_te).mean())
    assert acc > 0.95
    meta = C.read_model_metadata(C.pretrained_conditional_digits_path())
    assert meta["trained_with"] == "benchmarks/train_guidance.py"
