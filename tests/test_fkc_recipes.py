"""Tests of probkit.fkc (Feynman-Kac correctors) against exact targets.

Every target here is exact: powers, products and geometric means of Gaussians are Gaussian,
products of mixtures are mixtures (GaussianMixture.product), and 1-D/2-D annealed mixtures are
integrated on fine grids. The targets are taken at the end time t_min of the grid (the sampler
composes the noised models p_{t_min}, which differ from p_0 by O(sigma_{t_min}^2) ~ 2e-4).

Tolerances. The FK weights of annealing with beta > 1 are noisy: over seeds (N = 8192,
400 steps, eta = 1) the standard deviation of the weighted variance relative to the exact one
is about 0.05 (beta = 2) and 0.1 (beta = 3), of log Z-hat about 0.15 and 0.25. Tests average 2
seeds and allow about 3 such standard deviations; each also checks that the unweighted run
(the same proposal without weights) misses the target by much more than that tolerance.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit import fkc
from probkit.diffusion import VE, VP
from probkit.fkc.recipes import weight_rate
from probkit.models import GaussianMixture
from probkit.smc import langevin, mala

PROC = VP()
TMIN = PROC.t_min


def _stats(out):
    x = np.asarray(out.particles, np.float64).reshape(out.particles.shape[0], -1)
    w = np.asarray(out.weights, np.float64)
    w /= w.sum()
    mu = w @ x
    return mu, (w[:, None] * (x - mu)).T @ (x - mu), x, w


def _log_int_gauss_power(means, variances, b):
    """log ∫ ∏_i N(x; m_i, v_i)^{b_i} dx for diagonal Gaussians (arrays (K, d)), closed form."""
    means, variances, b = (np.asarray(a, np.float64) for a in (means, variances, b))
    prec = np.einsum("k,kd->d", b, 1 / variances)
    lin = np.einsum("k,kd->d", b, means / variances)
    const = 0.5 * np.einsum("k,kd->d", b, means**2 / variances + np.log(2 * np.pi * variances))
    return float(np.sum(lin**2 / (2 * prec) - const + 0.5 * np.log(2 * np.pi / prec)))


# --------------------------------------------------------------------------- weight rate
def test_weight_rate_is_generator_formula_for_every_eta():
    """r from scores only equals the generator formula
    ∂_s log q + div v + v·∇log q - (η²/2)(Δ log q + ‖∇log q‖²) (autodiff, 1-D), for all η."""
    m, c = jnp.array([1.5, -0.5]), jnp.array([0.5, 2.0])

    def logp(x, t, i):
        v = PROC.alpha(t) ** 2 * c[i] + PROC.sigma(t) ** 2
        return -0.5 * (x - PROC.alpha(t) * m[i]) ** 2 / v - 0.5 * jnp.log(2 * jnp.pi * v)

    for b in [(2.0,), (1.0, 1.0), (-1.0, 2.0), (0.3, 1.4)]:
        logq = lambda x, t: sum(bi * logp(x, t, i) for i, bi in enumerate(b))  # noqa: E731
        score = jax.grad(logq, 0)
        for eta_rel in (0.0, 0.5, 1.0, 2.0):
            g2 = lambda t: PROC.diffusion(t) ** 2  # noqa: E731
            v = lambda x, t: -PROC.drift(x, t) + 0.5 * (1 + eta_rel**2) * g2(t) * score(x, t)  # noqa: E731
            for x, t in [(0.3, 0.7), (-1.2, 0.05)]:
                x, t = jnp.float32(x), jnp.float32(t)
                s = score(x, t)
                r_gen = (
                    -jax.grad(logq, 1)(x, t) + jax.grad(v, 0)(x, t) + v(x, t) * s
                    - 0.5 * eta_rel**2 * g2(t) * (jax.grad(score, 0)(x, t) + s**2)
                )
                scores = [jnp.atleast_1d(jax.grad(logp, 0)(x, t, i)) for i in range(len(b))]
                r = weight_rate(PROC, scores, jnp.array(b), t, 1)
                np.testing.assert_allclose(float(r), float(r_gen), rtol=2e-4, atol=2e-3 * (1 + abs(float(r))) * 1e-1)


def test_weight_rate_special_cases():
    key = jax.random.PRNGKey(0)
    s1, s2 = jax.random.normal(key, (2, 3))
    t, d = jnp.float32(0.4), 3
    g2, divf = PROC.diffusion(t) ** 2, PROC.div_drift(t, d)
    for beta in (0.5, 2.0, 3.0):
        np.testing.assert_allclose(
            weight_rate(PROC, [s1], jnp.array([beta]), t, d),
            (beta - 1) * divf + g2 * beta * (beta - 1) * jnp.sum(s1**2) / 2, rtol=1e-5,
        )
    np.testing.assert_allclose(weight_rate(PROC, [s1, s2], jnp.ones(2), t, d), divf + g2 * jnp.dot(s1, s2), rtol=1e-5)
    for w in (0.5, 2.0, 4.0):
        np.testing.assert_allclose(
            weight_rate(PROC, [s1, s2], jnp.array([1 - w, w]), t, d),
            -0.5 * g2 * w * (1 - w) * jnp.sum((s1 - s2) ** 2), rtol=1e-5,
        )


# --------------------------------------------------------------------------- annealing
@pytest.mark.parametrize("beta", [0.5, 2.0, 3.0])
def test_annealed_gaussian(beta):
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.5]]), jnp.array([[0.5]]))
    pt = gm.noised(PROC, TMIN)
    m, v = float(pt.means[0, 0]), float(pt.covs[0, 0])
    exact_var = v / beta
    log_z = _log_int_gauss_power(pt.means, pt.covs, [beta])
    runs = [fkc.anneal(jax.random.PRNGKey(s), PROC, gm.score_fn(PROC), beta, 2**13, 400, shape=(1,)) for s in (0, 1)]
    assert runs[0].particles.shape == (2**13, 1) and runs[0].nfe == 400 and runs[0].ess.shape == (400,)
    means = [float(_stats(r)[0][0]) for r in runs]
    ratios = [float(_stats(r)[1][0, 0]) / exact_var for r in runs]
    tol = {0.5: 0.06, 2.0: 0.12, 3.0: 0.2}[beta]
    assert abs(np.mean(means) - m) < 0.05
    assert abs(np.mean(ratios) - 1) < tol, ratios
    # beta = 3: the default eta(t) = (2 - t) g(t) adds ~+0.3 of Euler bias at 400 steps (0.58 measured)
    assert abs(np.mean([float(r.log_evidence) for r in runs]) - log_z) < {0.5: 0.05, 2.0: 0.3, 3.0: 0.8}[beta]
    # the unweighted baseline is the composed-score reverse SDE (eta = 1): the default
    # eta(t) = (2 - t) g(t) already brings the unweighted proposal much closer to the target
    plain = fkc.anneal(jax.random.PRNGKey(0), PROC, gm.score_fn(PROC), beta, 2**13, 400, shape=(1,), weighted=False,
                       eta=1.0)
    assert float(plain.ess.min()) == pytest.approx(2**13) and not bool(plain.resampled.any())
    assert abs(float(_stats(plain)[1][0, 0]) / exact_var - 1) > max(1.5 * tol, 0.25)


def _mode_mass_and_ks(out, grid, log_dens):
    _, _, x, w = _stats(out)
    x = x[:, 0]
    dens = np.exp(log_dens - log_dens.max())
    cdf = np.cumsum(dens) / dens.sum()
    order = np.argsort(x)
    ks = np.max(np.abs(np.cumsum(w[order]) - np.interp(x[order], grid, cdf)))
    return float(w @ (x > 0)), float(np.sum(dens[grid > 0]) / dens.sum()), float(ks)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_annealed_mixture_1d(beta):
    """Annealing changes the mode masses (∝ w_k^β σ_k^{1-β} for separated modes); the plain
    SDE with the scaled score keeps them near the original weights."""
    gm = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([[0.2], [1.0]]))
    grid = np.linspace(-9, 9, 36001)
    log_dens = beta * np.asarray(jax.vmap(gm.noised(PROC, TMIN).log_prob)(jnp.asarray(grid)[:, None]), np.float64)
    out = fkc.anneal(jax.random.PRNGKey(1), PROC, gm.score_fn(PROC), beta, 2**13, 200, shape=(1,))
    mass, exact_mass, ks = _mode_mass_and_ks(out, grid, log_dens)
    # seed-to-seed sd of the mode mass is about 0.02 at N = 8192 (path degeneracy, ~25x binomial)
    assert abs(mass - exact_mass) < 0.06, (mass, exact_mass)
    # weighted KS: ~0.9/sqrt(ESS) ~ 0.02 by sampling alone, plus the mode-mass error
    assert ks < 0.06
    plain = fkc.anneal(jax.random.PRNGKey(1), PROC, gm.score_fn(PROC), beta, 2**13, 200, shape=(1,), weighted=False,
                       eta=1.0)
    p_mass, _, p_ks = _mode_mass_and_ks(plain, grid, log_dens)
    assert p_ks > 0.1 and p_ks > 3 * ks, (p_mass, exact_mass, p_ks, ks)


def test_annealed_mixture_2d(mixture_2d):
    beta = 0.5
    g = np.linspace(-9, 9, 541)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lp = beta * np.asarray(jax.vmap(mixture_2d.noised(PROC, TMIN).log_prob)(jnp.asarray(pts)), np.float64)
    dens = np.exp(lp - lp.max())
    dens /= dens.sum()
    mu_t = dens @ pts
    cov_t = (dens[:, None] * (pts - mu_t)).T @ (pts - mu_t)
    errs = {}
    for weighted in (True, False):
        out = fkc.anneal(jax.random.PRNGKey(2), PROC, mixture_2d.score_fn(PROC), beta, 2**12, 200, shape=(2,), weighted=weighted)
        mu, cov, _, _ = _stats(out)
        errs[weighted] = (np.abs(mu - mu_t).max(), np.abs(cov - cov_t).max())
    # MC error: the target covariance has entries ~4, sd of a covariance entry ~ 4 sqrt(2/ESS), ESS > 1000
    assert errs[True][0] < 0.15 and errs[True][1] < 0.5, errs
    assert errs[False][1] > 3 * errs[True][1], errs


# --------------------------------------------------------------------------- product
def test_product_of_mixtures():
    ga = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.5, 0.0], [1.5, 0.0]]), jnp.array([[0.6, 0.6], [0.6, 0.6]]))
    gb = GaussianMixture(jnp.array([0.4, 0.6]), jnp.array([[0.0, -1.0], [1.0, 1.5]]), jnp.array([[1.0, 0.5], [0.5, 1.0]]))
    na, nb = ga.noised(PROC, TMIN), gb.noised(PROC, TMIN)
    exact = na.product(nb)
    log_z = float(na.log_normalizer_product(nb))
    scores = [ga.score_fn(PROC), gb.score_fn(PROC)]
    runs = [fkc.product(jax.random.PRNGKey(s), PROC, scores, 2**13, 300, shape=(2,)) for s in (0, 1)]
    assert runs[0].nfe == 600
    mean_err = np.mean([np.abs(_stats(r)[0] - np.asarray(exact.mean())).max() for r in runs])
    cov_err = np.mean([np.abs(_stats(r)[1] - np.asarray(exact.covariance())).max() for r in runs])
    assert mean_err < 0.06 and cov_err < 0.08, (mean_err, cov_err)
    # log Z-hat at 300 steps: Euler bias ~ +0.4 and seed sd ~ 0.3 (measured; both shrink with
    # more steps, see the slow test); dropping the div f constant would be off by ~10.
    assert abs(np.mean([float(r.log_evidence) for r in runs]) - log_z) < 1.0
    plain = fkc.product(jax.random.PRNGKey(0), PROC, scores, 2**13, 300, shape=(2,), weighted=False, eta=1.0)
    assert np.abs(_stats(plain)[1] - np.asarray(exact.covariance())).max() > 2 * cov_err + 0.08


def test_product_with_exact_start_and_mala_corrector():
    """eta = 0 (deterministic flow) + MALA on the exact intermediate target: duplicates separate,
    and the exact initial weights (logdensity_fns) are used."""
    ga = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.5]]))
    gb = GaussianMixture(jnp.array([1.0]), jnp.array([[-0.5, 1.0]]), jnp.array([[0.5, 1.0]]))
    na, nb = ga.noised(PROC, TMIN), gb.noised(PROC, TMIN)
    exact = na.product(nb)
    out = fkc.product(
        jax.random.PRNGKey(3), PROC, [ga.score_fn(PROC), gb.score_fn(PROC)], 2**12, 100, shape=(2,), eta=0.0,
        logdensity_fns=[ga.logdensity_fn(PROC), gb.logdensity_fn(PROC)],
        corrector=mala(lambda t: 0.2 * PROC.sigma(t) ** 2 + 1e-3, 2),
    )
    assert out.corrector == "mala" and out.nfe == 100 * 2 + 100 * 3
    mu, cov, x, _ = _stats(out)
    np.testing.assert_allclose(mu, np.asarray(exact.mean()), atol=0.05)
    np.testing.assert_allclose(np.diag(cov), np.diag(np.asarray(exact.covariance())), rtol=0.1)
    assert np.unique(x[:, 0]).size > 2000  # not a handful of resampled duplicates


@pytest.mark.slow
def test_product_log_evidence_converges():
    """With 2000 steps the Euler bias of log Z-hat is < 0.2 (measured -0.3..-0.15 at 1000-3000
    steps over seeds, N = 8192; the residual is the usual negative bias of log of an unbiased Z-hat)."""
    ga = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.5, 0.0], [1.5, 0.0]]), jnp.array([[0.6, 0.6], [0.6, 0.6]]))
    gb = GaussianMixture(jnp.array([0.4, 0.6]), jnp.array([[0.0, -1.0], [1.0, 1.5]]), jnp.array([[1.0, 0.5], [0.5, 1.0]]))
    log_z = float(ga.noised(PROC, TMIN).log_normalizer_product(gb.noised(PROC, TMIN)))
    est = [
        float(fkc.product(jax.random.PRNGKey(s), PROC, [ga.score_fn(PROC), gb.score_fn(PROC)], 2**15, 2000, shape=(2,)).log_evidence)
        for s in range(4)
    ]
    assert abs(np.mean(est) - log_z) < 0.4, (est, log_z)


# --------------------------------------------------------------------------- geometric / CFG
@pytest.mark.parametrize("w", [2.0, 4.0])
def test_geometric_cfg_gaussians(w):
    g1 = GaussianMixture(jnp.array([1.0]), jnp.array([[0.0, 0.0]]), jnp.array([[2.0, 1.5]]))
    g2 = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0, -0.5]]), jnp.array([[0.8, 0.6]]))
    n1, n2 = g1.noised(PROC, TMIN), g2.noised(PROC, TMIN)
    prec = np.asarray((1 - w) / n1.covs[0] + w / n2.covs[0], np.float64)
    mean = np.asarray((1 - w) * n1.means[0] / n1.covs[0] + w * n2.means[0] / n2.covs[0]) / prec
    log_z = _log_int_gauss_power(np.concatenate([n1.means, n2.means]), np.concatenate([n1.covs, n2.covs]), [1 - w, w])
    out = fkc.cfg(jax.random.PRNGKey(4), PROC, g1.score_fn(PROC), g2.score_fn(PROC), w, 2**12, 200, shape=(2,))
    if w == 2.0:  # cfg is geometric with exponents (1 - w, w)
        a = fkc.cfg(jax.random.PRNGKey(4), PROC, g1.score_fn(PROC), g2.score_fn(PROC), w, 64, 10, shape=(2,))
        b = fkc.geometric(jax.random.PRNGKey(4), PROC, [g1.score_fn(PROC), g2.score_fn(PROC)], [1 - w, w], 64, 10, shape=(2,))
        np.testing.assert_array_equal(np.asarray(a.particles), np.asarray(b.particles))
    mu, cov, _, _ = _stats(out)
    # ESS > 1500 and var <= 0.5: se(mean) < 0.02, relative se(var) < 0.04
    np.testing.assert_allclose(mu, mean, atol=0.08)
    np.testing.assert_allclose(np.diag(cov), 1 / prec, rtol=0.15)
    assert abs(float(out.log_evidence) - log_z) < 0.15
    plain = fkc.cfg(jax.random.PRNGKey(4), PROC, g1.score_fn(PROC), g2.score_fn(PROC), w, 2**12, 200, shape=(2,), weighted=False,
                    eta=1.0)
    assert np.abs(_stats(plain)[0] - mean).max() > 0.12


# --------------------------------------------------------------------------- options
def test_eta_and_grid_options():
    """η = 2g (relative) and the same as an absolute schedule agree; other grids and VE run."""
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.5]]), jnp.array([[0.5]]))
    v = float(gm.noised(PROC, TMIN).covs[0, 0])
    # adaptive resampling: resampling at every step would amplify float rounding between the two
    adaptive = dict(resampling="systematic", ess_threshold=0.5)
    a = fkc.anneal(jax.random.PRNGKey(5), PROC, gm.score_fn(PROC), 2.0, 2**12, 400, shape=(1,), eta=2.0, **adaptive)
    b = fkc.anneal(jax.random.PRNGKey(5), PROC, gm.score_fn(PROC), 2.0, 2**12, 400, shape=(1,),
                   eta=lambda t: 2.0, **adaptive)
    np.testing.assert_allclose(np.asarray(a.particles), np.asarray(b.particles), rtol=1e-5, atol=1e-5)
    assert abs(_stats(a)[1][0, 0] / (v / 2) - 1) < 0.1
    c = fkc.anneal(jax.random.PRNGKey(5), PROC, gm.score_fn(PROC), 2.0, 2**12, 100, shape=(1,), grid="quadratic",
                   corrector=langevin(lambda t: 0.05 * PROC.sigma(t) ** 2))
    assert c.corrector == "langevin" and np.all(np.isfinite(np.asarray(c.particles)))
    assert abs(_stats(c)[1][0, 0] / (v / 2) - 1) < 0.25


def test_value_errors():
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[0.0]]), jnp.array([[1.0]]))
    sf = gm.score_fn(PROC)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="beta"):
        fkc.anneal(key, PROC, sf, -1.0, 16, 10, shape=(1,))
    with pytest.raises(ValueError, match="shape"):
        fkc.anneal(key, PROC, sf, 2.0, 16, 10)
    with pytest.raises(ValueError, match="score"):
        fkc.anneal(key, PROC, lambda x, t: jnp.zeros(2), 2.0, 16, 10, shape=(3,))
    with pytest.raises(ValueError, match="exponents"):
        fkc.geometric(key, PROC, [sf, sf], [1.0], 16, 10, shape=(1,))
    with pytest.raises(ValueError, match="positive sum"):
        fkc.geometric(key, PROC, [sf, sf], [1.0, -1.0], 16, 10, shape=(1,))
    with pytest.raises(ValueError, match="num_steps"):
        fkc.product(key, PROC, [sf, sf], 16, 0, shape=(1,))
    with pytest.raises(ValueError, match="grid"):
        fkc.product(key, PROC, [sf, sf], 16, 10, shape=(1,), grid="bogus")
    with pytest.raises(ValueError, match="eta"):
        fkc.product(key, PROC, [sf, sf], 16, 10, shape=(1,), eta=-1.0)
    with pytest.raises(ValueError, match="logdensity"):
        fkc.product(key, PROC, [sf, sf], 16, 10, shape=(1,), corrector=mala(0.1))
    with pytest.raises(ValueError, match="process"):
        fkc.product(key, "vp", [sf, sf], 16, 10, shape=(1,))
    with pytest.raises(ValueError, match="guidance"):
        fkc.cfg(key, PROC, sf, sf, float("nan"), 16, 10, shape=(1,))


def test_ve_process_product_runs():
    """A VE process (div f = 0, large prior variance) on the same recipe: product of Gaussians."""
    ve = VE(sigma_min=0.01, sigma_max=10.0)
    ga = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0]]), jnp.array([[1.0]]))
    gb = GaussianMixture(jnp.array([1.0]), jnp.array([[-1.0]]), jnp.array([[1.0]]))
    out = fkc.product(jax.random.PRNGKey(6), ve, [ga.score_fn(ve), gb.score_fn(ve)], 2**12, 200, shape=(1,))
    exact = ga.noised(ve, ve.t_min).product(gb.noised(ve, ve.t_min))
    mu, cov, _, _ = _stats(out)
    assert abs(mu[0] - float(exact.mean()[0])) < 0.08
    assert abs(cov[0, 0] / float(exact.covariance()[0, 0]) - 1) < 0.15


@pytest.mark.slow
def test_cfg_multimodal_mode_masses():
    """Guidance w = 3 of a 5-mode mixture towards a 2-mode class (N = 2^15, 800 steps, 3 seeds):
    the mass split between the two class modes matches the grid ground truth, and the covariance
    error is below the unweighted one.

    Measured (max-entry covariance error, 3 seeds): weighted 0.09/0.06/- (CPU, N = 2^15),
    0.15/0.26/0.08 (GPU, N = 2^15), 0.15/0.12/0.19 (CPU, N = 2^17): it does NOT shrink with N,
    so ~0.15 is bias (Euler discretisation of the 800-step scheme, seen mostly in var(y), i.e. in
    a ~2% error of the mode split) plus seed noise of sd ~0.07. Unweighted: 0.21-0.23 on every
    platform (its mode split is right, the shape of each guided mode is not). Bounds: weighted
    mean < 0.25 (bias + 2 sd of a 3-seed mean) and below the unweighted error.
    """
    five = GaussianMixture(
        jnp.array([0.35, 0.25, 0.2, 0.12, 0.08]),
        jnp.array([[-3.0, -2.0], [2.5, 2.5], [3.0, -2.5], [-2.5, 3.0], [0.0, 0.0]]),
        jnp.array([[0.2, 0.2], [0.9, 0.6], [0.4, 0.4], [1.0, 1.0], [0.15, 0.3]]),
    )
    cond = GaussianMixture(jnp.array([0.55, 0.45]), five.means[1:3], five.covs[1:3])
    g = np.linspace(-8, 8, 401)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lp = sum(
        b * np.asarray(jax.vmap(m.noised(PROC, TMIN).log_prob)(jnp.asarray(pts)), np.float64)
        for b, m in ((-2.0, five), (3.0, cond))
    )
    dens = np.exp(lp - lp.max())
    dens /= dens.sum()
    exact_upper = float(dens[pts[:, 1] > 0].sum())
    mu_t = dens @ pts
    cov_t = (dens[:, None] * (pts - mu_t)).T @ (pts - mu_t)
    masses, cov_errs = [], []
    for s in range(3):
        out = fkc.cfg(jax.random.PRNGKey(s), PROC, five.score_fn(PROC), cond.score_fn(PROC), 3.0, 2**15, 800, shape=(2,))
        _, cov, x, w = _stats(out)
        masses.append(float(w @ (x[:, 1] > 0)))
        cov_errs.append(np.abs(cov - cov_t).max())
    plain = fkc.cfg(jax.random.PRNGKey(0), PROC, five.score_fn(PROC), cond.score_fn(PROC), 3.0, 2**15, 800, shape=(2,), weighted=False)
    p_cov_err = np.abs(_stats(plain)[1] - cov_t).max()
    assert abs(np.mean(masses) - exact_upper) < 0.06, (masses, exact_upper)
    assert np.mean(cov_errs) < 0.25 and p_cov_err > np.mean(cov_errs), (cov_errs, p_cov_err)
