"""Exact Gaussian mixtures: scores, noised moments, products and conditioning against brute force."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probkit.diffusion import EDM, VE, VP, VPCosine
from probkit.models import GaussianMixture

PROCESSES = [VP(), VPCosine(), VE(), EDM()]
IDS = ["VP", "VPCosine", "VE", "EDM"]


def _diag_mixture():
    return GaussianMixture(jnp.array([0.6, 0.4]), jnp.array([[1.0, -1.0, 0.0], [-2.0, 0.5, 1.0]]),
                           jnp.array([[0.3, 0.5, 1.0], [0.2, 0.2, 0.7]]))


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
@pytest.mark.parametrize("which", ["full", "diag"])
def test_score_equals_grad_of_noised_log_density(proc, which, mixture_2d):
    gm = mixture_2d if which == "full" else _diag_mixture()
    score_fn, logp = gm.score_fn(proc), gm.logdensity_fn(proc)
    key = jax.random.PRNGKey(3)
    xs = 3.0 * jax.random.normal(key, (16, gm.dim))
    ts = jax.random.uniform(jax.random.PRNGKey(4), (16,), minval=0.0, maxval=1.0)
    exact = jax.vmap(score_fn)(xs, ts)
    autodiff = jax.vmap(jax.grad(logp))(xs, ts)
    np.testing.assert_allclose(exact, autodiff, rtol=2e-3, atol=2e-3 * float(jnp.abs(autodiff).max()))


def test_log_prob_matches_scipy(mixture_2d):
    x = np.array([[0.3, -0.7], [2.0, 1.0], [-3.0, 0.5]])
    ref = np.log(sum(float(w) * stats.multivariate_normal(np.asarray(m), np.asarray(c)).pdf(x)
                     for w, m, c in zip(mixture_2d.weights, mixture_2d.means, mixture_2d.covs)))
    np.testing.assert_allclose(jax.vmap(mixture_2d.log_prob)(jnp.asarray(x)), ref, rtol=1e-5)


@pytest.mark.parametrize("proc", PROCESSES, ids=IDS)
def test_noised_moments_match_monte_carlo(proc, mixture_2d):
    n, t = 100_000, 0.3
    x0 = mixture_2d.sample(jax.random.PRNGKey(0), n)
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    xt = jax.vmap(proc.marginal_sample, in_axes=(0, 0, None))(keys, x0, t)
    noised = mixture_2d.noised(proc, t)
    cov = np.asarray(noised.covariance())
    se = np.sqrt(np.diag(cov) / n)  # standard error of each mean coordinate
    np.testing.assert_array_less(np.abs(np.asarray(xt.mean(0) - noised.mean())), 5 * se)
    # variance of a sample covariance entry: (S_ii S_jj + S_ij^2)/n for near-Gaussian data; the
    # mixture has heavier fourth moments, so allow 8 standard errors
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(np.asarray(xt).T) - cov), 8 * se_cov)


def _grid_1d(lo=-12.0, hi=12.0, n=48_001):
    x = np.linspace(lo, hi, n)
    return x, x[1] - x[0]


def _mixture_1d(w, m, v):
    return GaussianMixture(jnp.array(w), jnp.array(m)[:, None], jnp.array(v)[:, None, None])


def _grid_density(gm, x):
    return np.exp(np.asarray(jax.vmap(gm.log_prob)(jnp.asarray(x)[:, None])))


def test_condition_matches_grid_bayes():
    prior = _mixture_1d([0.3, 0.7], [-2.0, 1.5], [0.5, 1.2])
    a, y, s = 1.7, 0.9, 0.6
    post = prior.condition(jnp.array([[a]]), jnp.array([y]), s)
    x, dx = _grid_1d()
    unnorm = _grid_density(prior, x) * stats.norm.pdf(y, a * x, s)
    z = unnorm.sum() * dx
    grid_post = unnorm / z
    np.testing.assert_allclose(_grid_density(post, x), grid_post, atol=1e-4 * grid_post.max())
    np.testing.assert_allclose(float(prior.log_marginal_likelihood(jnp.array([[a]]), jnp.array([y]), s)),
                               np.log(z), rtol=1e-4)


def test_condition_multivariate_matches_kalman_for_one_gaussian():
    rng = np.random.default_rng(0)
    d, m = 4, 2
    L = rng.normal(size=(d, d))
    S = L @ L.T + d * np.eye(d)
    mu = rng.normal(size=d)
    A = rng.normal(size=(m, d))
    y, s = rng.normal(size=m), 0.3
    post = GaussianMixture(jnp.ones(1), jnp.asarray(mu)[None], jnp.asarray(S)[None]).condition(A, y, s)
    prec = np.linalg.inv(S) + A.T @ A / s**2
    cov = np.linalg.inv(prec)
    mean = cov @ (np.linalg.solve(S, mu) + A.T @ y / s**2)
    np.testing.assert_allclose(post.means[0], mean, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(post.covs[0], cov, rtol=1e-3, atol=1e-4)


def test_product_matches_grid():
    p1 = _mixture_1d([0.4, 0.6], [-1.0, 2.0], [0.8, 0.5])
    p2 = _mixture_1d([0.5, 0.5], [0.0, 3.0], [1.0, 2.0])
    x, dx = _grid_1d()
    unnorm = _grid_density(p1, x) * _grid_density(p2, x)
    z = unnorm.sum() * dx
    np.testing.assert_allclose(_grid_density(p1.product(p2), x), unnorm / z, atol=1e-4 * (unnorm / z).max())
    np.testing.assert_allclose(float(p1.log_normalizer_product(p2)), np.log(z), rtol=1e-4)


def test_product_diag_agrees_with_full():
    gd = _diag_mixture()
    gf = GaussianMixture(gd.weights, gd.means, jax.vmap(jnp.diag)(gd.covs))
    other = GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 3)), jnp.ones((1, 3)) * 2.0)
    pd, pf = gd.product(other), gf.product(other)
    np.testing.assert_allclose(pd.weights, pf.weights, rtol=1e-5)
    np.testing.assert_allclose(pd.full_covs(), pf.covs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pd.means, pf.means, rtol=1e-5, atol=1e-6)


def test_sample_moments(mixture_2d):
    n = 200_000
    x = mixture_2d.sample(jax.random.PRNGKey(7), n)
    cov = np.asarray(mixture_2d.covariance())
    np.testing.assert_array_less(np.abs(np.asarray(x.mean(0) - mixture_2d.mean())), 5 * np.sqrt(np.diag(cov) / n))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(jnp.array([-0.5, 1.5]), jnp.zeros((2, 2)), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(jnp.array([0.5, 0.6]), jnp.zeros((2, 2)), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.array([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(jnp.array([0.5, 0.5]), jnp.zeros((3, 2)), jnp.ones((2, 2)))
    gm = GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="`t`"):
        gm.noised(VP(), 1.5)
    with pytest.raises(ValueError, match="`y`"):
        gm.condition(jnp.ones((1, 2)), jnp.ones(2), 0.1)
    with pytest.raises(ValueError, match="noise_std"):
        gm.condition(jnp.ones((1, 2)), jnp.ones(1), 0.0)
    with pytest.raises(ValueError, match="`A`"):
        gm.condition(jnp.ones((1, 3)), jnp.ones(1), 0.1)
    with pytest.raises(ValueError, match="other"):
        gm.product(GaussianMixture(jnp.array([1.0]), jnp.zeros((1, 3)), jnp.ones((1, 3))))


# ======================================================================================
# condition() with probkit.inverse.operators linear operators (issue 16; engineer robust).
# Kept in one block at the end of the file.
# ======================================================================================
def _operator_cases():
    from probkit.inverse import operators as ops

    rng = np.random.default_rng(0)
    observed = rng.random((4, 4)) < 0.5
    dense = rng.normal(size=(5, 16))
    kernel = np.array([[0.0, 0.2, 0.0], [0.2, 0.2, 0.2], [0.0, 0.2, 0.0]])
    return [
        ("mask", ops.mask(observed)),
        ("downsample", ops.downsample((4, 4), 2)),
        ("blur", ops.blur((4, 4), kernel)),
        ("dense", ops.dense(dense)),
        ("function", ops.from_function(lambda x: jnp.cumsum(x.reshape(-1))[::3], (4, 4))),
    ]


@pytest.mark.parametrize("name", ["mask", "blur", "function"])  # downsample and dense take the same path
def test_condition_accepts_linear_operators(name):
    # The operator is materialised as A[:, j] = op.apply(e_j); the posterior and the log
    # marginal likelihood must equal those computed from that dense matrix, and the dense
    # matrix must reproduce op.apply on a random signal (so the materialisation is right).
    op = dict(_operator_cases())[name]
    rng = np.random.default_rng(1)
    d, k = 16, 3
    covs = np.stack([np.diag(rng.uniform(0.3, 1.5, d)) + 0.1 for _ in range(k)])
    gm = GaussianMixture(jnp.array([0.2, 0.5, 0.3]), jnp.asarray(rng.normal(size=(k, d))), jnp.asarray(covs))
    x = jnp.asarray(rng.normal(size=d))
    A = np.stack([np.asarray(op.apply(jnp.eye(d)[j].reshape(op.in_shape))).ravel() for j in range(d)], 1)
    np.testing.assert_allclose(A @ np.asarray(x), np.asarray(op.apply(x.reshape(op.in_shape))).ravel(), rtol=1e-5, atol=1e-5)
    y = op.apply(x.reshape(op.in_shape)) + 0.1  # observation shaped like op.out_shape
    post_op = gm.condition(op, y, 0.3)
    post_mat = gm.condition(jnp.asarray(A), jnp.asarray(y).reshape(-1), 0.3)
    for a, b in [(post_op.weights, post_mat.weights), (post_op.means, post_mat.means), (post_op.covs, post_mat.covs)]:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gm.log_marginal_likelihood(op, y, 0.3),
                               gm.log_marginal_likelihood(jnp.asarray(A), jnp.asarray(y).ravel(), 0.3), rtol=1e-6)


def test_condition_operator_bad_inputs():
    from probkit.inverse import operators as ops

    gm = GaussianMixture(jnp.ones(1), jnp.zeros((1, 9)), jnp.ones((1, 9)))
    with pytest.raises(ValueError, match="`A` acts on signals of shape"):
        gm.condition(ops.downsample((4, 4), 2), jnp.zeros((2, 2)), 0.1)
    with pytest.raises(ValueError, match="`y`"):
        gm.condition(ops.mask(np.ones((3, 3), bool)), jnp.zeros(4), 0.1)
    with pytest.raises(ValueError, match="from_function"):
        gm.condition(lambda x: x[:2], jnp.zeros(2), 0.1)
    with pytest.raises(ValueError, match="`A`"):
        gm.condition("not a matrix", jnp.zeros(2), 0.1)
    with pytest.raises(ValueError, match="`A` must be finite"):
        gm.condition(jnp.full((2, 9), jnp.nan), jnp.zeros(2), 0.1)
    with pytest.raises(ValueError, match="noise_std"):
        gm.condition(jnp.ones((2, 9)), jnp.zeros(2), "0.1")


def test_diag_mixture_high_dimension_accuracy_and_no_particle_by_component_temporaries():
    """The diagonal mixture's log density and score are written as matrix products (GEMMs under
    vmap): f32 results match a float64 direct evaluation at d = 800 near a mode, and the vmapped
    programs hold no (N, K, d) intermediate (those made XLA:GPU compile for minutes)."""
    from scipy.special import logsumexp

    r = np.random.default_rng(0)
    k, d, n = 25, 800, 7
    means, covs = 2.0 * r.normal(size=(k, d)), 0.1 + r.uniform(size=(k, d))
    gm = GaussianMixture(np.full(k, 1.0 / k), means, covs)
    for i in range(5):
        x = means[i] + 0.3 * np.sqrt(covs[i]) * r.normal(size=d)
        comp = np.log(1.0 / k) - 0.5 * (((x - means) ** 2 / covs).sum(1) + np.log(covs).sum(1) + d * np.log(2 * np.pi))
        resp = np.exp(comp - logsumexp(comp))
        score = (resp[:, None] * (means - x) / covs).sum(0)
        assert abs(float(gm.log_prob(jnp.float32(x))) - logsumexp(comp)) < 5e-3
        np.testing.assert_allclose(np.asarray(gm.score(jnp.float32(x))), score, rtol=0, atol=1e-4 * np.abs(score).max())
    xs = jnp.zeros((n, d))
    for fn in (gm.score, gm.log_prob, jax.grad(lambda z: jnp.sum(gm.score(z)))):
        jaxpr = jax.make_jaxpr(jax.vmap(fn))(xs)
        shapes = {tuple(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars}
        assert not any(len(s) == 3 and s[0] == n for s in shapes), shapes
