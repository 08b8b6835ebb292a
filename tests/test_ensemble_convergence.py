"""Ensemble posterior sampler (Chen et al. 2025, arXiv 2506.03979): each piece of the weights
against finite differences / closed forms, and log p(y) and sliced W2 against exact answers on
random Gaussian-mixture problems (issue 11)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit import inverse
from probkit.diagnostics.metrics import sliced_wasserstein
from probkit.diffusion import VP, time_grid
from probkit.inverse.ensemble import _kernel_coefs, weight_rate
from probkit.smc import Particle
from probkit.models import GaussianMixture
from probkit.smc import run_smc



def _problem(seed, d=4, m=2, noise=0.3, k=3):
    """Random k-component mixture prior (full covariances), dense m x d operator."""
    rng = np.random.default_rng(seed)
    means = 2.5 * rng.standard_normal((k, d))
    covs = []
    for _ in range(k):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        covs.append((q * rng.uniform(0.1, 1.0, d)) @ q.T)
    gm = GaussianMixture(jnp.asarray(rng.dirichlet(2.0 * np.ones(k))), jnp.asarray(means), jnp.asarray(np.stack(covs)))
    A = jnp.asarray(rng.standard_normal((m, d)) * 2.0 / math.sqrt(d))
    x = gm.sample(jax.random.PRNGKey(seed), 1)[0]
    y = A @ x + noise * jnp.asarray(rng.standard_normal(m))
    return gm, A, y, noise


# ----------------------------------------------------------------------------------------------
# the pieces of the weight increment against finite differences of the exact path density
@pytest.mark.parametrize("path_name", ["gaussian", "tempered"])
def test_weight_pieces_match_finite_differences(path_name):
    """∂_t log l_t, u = ∇ log l_t, Δ log l_t, f = (d log α/dt) x, g² = dσ²/dt - 2 f σ² and the
    exact score s = ∇ log p_t: each equals its central finite difference (float64), and the
    assembled rate equals its pieces."""
    with jax.enable_x64(True):
        proc = VP()
        gm, A, y, sy = _problem(0, d=3, m=2)
        gm = GaussianMixture(gm.weights.astype(jnp.float64), gm.means.astype(jnp.float64), gm.covs.astype(jnp.float64))
        lik = inverse.gaussian(np.asarray(A, np.float64), np.asarray(y, np.float64), sy)
        path = inverse.gaussian_path(lik, proc) if path_name == "gaussian" else inverse.tempered_path(lik, proc)
        log_p = gm.logdensity_fn(proc)
        e = 1e-5
        rng = np.random.default_rng(1)
        for t in (0.05, 0.3, 0.7):
            t = jnp.asarray(t, jnp.float64)
            x = jnp.asarray(rng.standard_normal(3))
            eye = jnp.eye(3, dtype=jnp.float64)
            # ∂_t log l_t
            dt_fd = (path.loglikelihood_fn(x, t + e) - path.loglikelihood_fn(x, t - e)) / (2 * e)
            u, dt_ad = jax.grad(path.loglikelihood_fn, argnums=(0, 1))(x, t)
            np.testing.assert_allclose(dt_ad, dt_fd, rtol=1e-5, atol=1e-6)
            # u = ∇ log l_t
            u_fd = jnp.array([(path.loglikelihood_fn(x + e * v, t) - path.loglikelihood_fn(x - e * v, t)) / (2 * e) for v in eye])
            np.testing.assert_allclose(u, u_fd, rtol=1e-5, atol=1e-6)
            # Δ log l_t (closed form) vs second differences
            h2 = 1e-3
            lap_fd = sum((path.loglikelihood_fn(x + h2 * v, t) - 2 * path.loglikelihood_fn(x, t) + path.loglikelihood_fn(x - h2 * v, t)) / h2**2 for v in eye)
            np.testing.assert_allclose(path.laplacian(jax.random.PRNGKey(0), x, t), lap_fd, rtol=1e-4, atol=1e-4)
            # f(t) = d log α / dt and g² = dσ²/dt - 2 f σ²
            f_fd = (jnp.log(proc.alpha(t + e)) - jnp.log(proc.alpha(t - e))) / (2 * e)
            np.testing.assert_allclose(proc.drift_coef(t), f_fd, rtol=1e-6)
            ds2 = (proc.sigma(t + e) ** 2 - proc.sigma(t - e) ** 2) / (2 * e)
            np.testing.assert_allclose(proc.diffusion(t) ** 2, ds2 - 2 * f_fd * proc.sigma(t) ** 2, rtol=1e-5)
            # the exact score
            s = gm.score_fn(proc)(x, t)
            s_fd = jnp.array([(log_p(x + e * v, t) - log_p(x - e * v, t)) / (2 * e) for v in eye])
            np.testing.assert_allclose(s, s_fd, rtol=1e-5, atol=1e-6)
            # the assembled rate: -∂_t log l - f⟨x, u⟩ + g²/2 Δ log l + g²⟨s, u⟩ + g²/2 ‖u‖²
            g2 = ds2 - 2 * f_fd * proc.sigma(t) ** 2
            r_fd = -dt_fd - f_fd * jnp.dot(x, u_fd) + 0.5 * g2 * lap_fd + g2 * jnp.dot(s_fd, u_fd) + 0.5 * g2 * jnp.dot(u_fd, u_fd)
            r = weight_rate(proc, x, t, s, u, dt_ad, path.laplacian(None, x, t))
            np.testing.assert_allclose(r, r_fd, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_hutchinson_laplacian_is_unbiased_but_noisy():
    """The stochastic Laplacian averages to the exact one (but exp(h·r) of a noisy r is biased
    upwards by Jensen, E exp(h r̂) ≥ exp(h E r̂): why transition weights need no Laplacian)."""
    gm, A, y, sy = _problem(1, d=5, m=3)
    lik = inverse.from_numpyro(lambda x: __import__("numpyro").distributions.Normal(A @ x, sy), y, (5,))
    exact = inverse.tempered_path(lik, VP(), laplacian="exact")
    hutch = inverse.tempered_path(lik, VP(), laplacian="hutchinson", num_probes=1)
    x, t = jnp.linspace(-1.0, 1.0, 5), jnp.asarray(0.2)
    est = jax.jit(jax.vmap(lambda k: hutch.laplacian(k, x, t)))(jax.random.split(jax.random.PRNGKey(0), 2000))
    ref = exact.laplacian(None, x, t)
    assert abs(float(est.mean()) - float(ref)) < 4 * float(est.std()) / math.sqrt(2000)
    assert float(est.std()) > 0.05 * abs(float(ref))


@pytest.mark.parametrize("integrator", ["euler_maruyama", "ddpm"])
def test_transition_weight_is_exact_density_ratio(integrator):
    """The telescoped weight equals log l_{t'}(x') - log l_t(x) + log K(x'|x) - log Q(x'|x) with
    K, Q the Gaussian prior / guided kernels written out from scratch."""
    proc = VP()
    gm, A, y, sy = _problem(2)
    lik = inverse.gaussian(A, y, sy)
    path = inverse.gaussian_path(lik, proc)
    sf = gm.score_fn(proc)
    model, _ = inverse.ensemble_model(proc, sf, path, (4,), integrator=integrator, weights="transition")
    x = jnp.array([0.3, -1.0, 0.5, 2.0])
    for t, t_next in ((0.8, 0.79), (0.1, 0.095)):
        t, t_next = jnp.asarray(t), jnp.asarray(t_next)
        new = model.transition(jax.random.PRNGKey(3), t, t_next, Particle(x, jnp.zeros(())))
        s, u = sf(x, t), jax.grad(path.loglikelihood_fn)(x, t)
        if integrator == "euler_maruyama":
            h, g2 = t - t_next, proc.diffusion(t) ** 2
            m_p = x + h * (-proc.drift(x, t) + g2 * s)
            m_q = x + h * (-proc.drift(x, t) + g2 * (s + u))
            var = g2 * h
        else:  # DDPM ancestral: x' = α' x̂0 + sqrt(σ'² - c²) ε + c z
            a, an, sg, sn = proc.alpha(t), proc.alpha(t_next), proc.sigma(t), proc.sigma(t_next)
            var = (sg**2 - (a / an) ** 2 * sn**2) * sn**2 / sg**2
            mean = lambda sc: an * (x + sg**2 * sc) / a + jnp.sqrt(sn**2 - var) * (-sg * sc)  # noqa: E731
            m_p, m_q = mean(s), mean(s + u)
        lq = lambda m: -0.5 * jnp.sum((new.x - m) ** 2) / var  # noqa: E731
        ref = path.loglikelihood_fn(new.x, t_next) - path.loglikelihood_fn(x, t) + lq(m_p) - lq(m_q)
        np.testing.assert_allclose(new.log_g, ref, rtol=2e-3, atol=2e-3)


def test_adapted_proposal_is_exact_product():
    """``propose(key, m, v, t)``: log Z = log N(y; A m/α, Σ_t + v A Aᵀ/α²) and the draws have the
    moments of the Gaussian N(m, v I) · l_t (dense algebra)."""
    proc = VP()
    gm, A, y, sy = _problem(3)
    lik = inverse.gaussian(A, y, sy)
    path = inverse.gaussian_path(lik, proc)
    m, v, t = jnp.array([0.5, -0.2, 1.0, 0.0]), 0.3, jnp.asarray(0.4)
    a, r2 = proc.alpha(t), (proc.sigma(t) / proc.alpha(t)) ** 2
    B, S = A / a, sy**2 * jnp.eye(2) + r2 * A @ A.T
    C = S + v * B @ B.T
    ref = jax.scipy.stats.multivariate_normal.logpdf(y, B @ m, C)
    xs, lz = jax.vmap(lambda k: path.propose(k, m, v, t))(jax.random.split(jax.random.PRNGKey(0), 40000))
    np.testing.assert_allclose(lz[0], ref, rtol=1e-4, atol=1e-4)
    gain = v * B.T @ jnp.linalg.inv(C)
    mean = m + gain @ (y - B @ m)
    cov = v * jnp.eye(4) - gain @ B * v
    np.testing.assert_allclose(xs.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(jnp.cov(xs.T), cov, atol=0.02)


# ----------------------------------------------------------------------------------------------
# log p(y) and sliced W2 against exact answers
def _evidence_runs(gm, A, y, sy, num_steps, n, seeds, **kw):
    """log_evidence of ``seeds`` runs (vmapped: one compile) and the exact log ∫ p_{t_min} l."""
    proc = VP()
    lik = inverse.gaussian(A, y, sy)
    ts = time_grid(proc, num_steps)
    twist = kw.pop("twist", "denoised")
    model, target = inverse.ensemble_model(proc, gm.score_fn(proc), inverse.gaussian_path(lik, proc), (gm.dim,),
                                   logdensity_fn=gm.logdensity_fn(proc), twist=twist,
                                   t_end=None if kw.get("weights") == "rate" else float(ts[-1]), **kw)
    def one(k):
        out = run_smc(k, model, n, ts, target=target, check=False)
        return out.particles, out.log_weights, out.log_evidence

    pos, lw, lz = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(42), seeds))
    exact = float(gm.noised(proc, proc.t_min).log_marginal_likelihood(A, y, sy))
    return np.asarray(lz), exact, pos, lw


# Recommended setting (docs/inverse.md): 200 steps. Measured seed spread of log p(y) at N = 1024,
# 8 seeds (CPU), on problems 10/11/12 with s_y = 0.3/0.1/0.05: sd 0.023/0.113/0.050, mean error
# -0.008/+0.024/-0.022 (all within 1 SE); Chen et al.'s rate weights on the same problems:
# +0.35/+0.49/+0.31 (sd 0.47/0.50/0.23). The tolerance is 3 standard errors of the mean
# (sd/sqrt(S), estimated from the seeds) plus 0.01 nat for the prior chain's discretisation bias.
@pytest.mark.parametrize("seed", [0, 1])
def test_log_evidence_within_three_standard_errors(seed):
    gm, A, y, sy = _problem(10 + seed, d=4, m=2, noise=0.3 if seed == 0 else 0.1)
    lz, exact, _, _ = _evidence_runs(gm, A, y, sy, 200, 1024, 8)
    err = lz - exact
    se = err.std(ddof=1) / math.sqrt(len(err))
    assert abs(err.mean()) < 3 * se + 0.01, (err.mean(), se, err)
    assert err.std(ddof=1) < 0.3, err  # the seed spread itself is small (0.02-0.11 measured)


@pytest.mark.slow
def test_rate_weights_fail_the_evidence_check():
    """Chen et al.'s rate x h weights on the same kind of problem at 200 steps: the upward
    bias of issue 11 (+0.5 nat or more) is far outside 3 standard errors: the check above can fail."""
    gm, A, y, sy = _problem(12, d=4, m=2, noise=0.05)
    lz, exact, _, _ = _evidence_runs(gm, A, y, sy, 200, 1024, 16, twist="path", weights="rate")
    err = lz - exact
    se = err.std(ddof=1) / math.sqrt(len(err))
    assert err.mean() > 3 * se + 0.01, (err.mean(), se)


@pytest.mark.slow
def test_sliced_w2_falls_with_steps_and_particles():
    """Sliced W2 to exact posterior draws (minus nothing: the exact-vs-exact floor at the same N
    also falls as N^-1/2) decreases as N grows (fitted log-log slope < -0.2; the floor's is -0.5)
    and does not grow with the number of steps (slope < 0.05), and the log p(y) RMS error falls
    with N at a slope near -1/2 (between -1 and -0.2)."""
    gm, A, y, sy = _problem(20, d=4, m=2, noise=0.2)
    proc = VP()
    post = gm.noised(proc, proc.t_min).condition(A, y, sy)
    k_sw = jax.random.PRNGKey(7)

    def sw_of(num_steps, n, seeds=4):
        lz, exact, pos, lw = _evidence_runs(gm, A, y, sy, num_steps, n, seeds)
        ref = post.sample(jax.random.PRNGKey(5), n)
        sws = []
        for i in range(seeds):
            idx = jax.random.choice(jax.random.PRNGKey(i), n, (n,), p=jnp.exp(lw[i]))
            sws.append(float(sliced_wasserstein(pos[i][idx], ref, k_sw)))
        return float(np.mean(sws)), float(np.sqrt(np.mean((lz - exact) ** 2)))

    ns = [256, 1024, 4096]
    by_n = [sw_of(100, n) for n in ns]
    slope_sw = np.polyfit(np.log(ns), np.log([b[0] for b in by_n]), 1)[0]
    slope_lz = np.polyfit(np.log(ns), np.log([b[1] for b in by_n]), 1)[0]
    assert slope_sw < -0.2, by_n
    assert -1.0 < slope_lz < -0.2, by_n
    ks = [50, 100, 200]
    by_k = [sw_of(k, 1024) for k in ks]
    slope_k = np.polyfit(np.log(ks), np.log([b[0] for b in by_k]), 1)[0]
    assert slope_k < 0.05, by_k
