"""Bayesian estimation of differential privacy (Zanella-Béguelin et al. 2023).

Zanella-Béguelin, Wutschitz, Tople, Salem, Rühle, Paverd, Naseri, Köpf & Jones,
"Bayesian Estimation of Differential Privacy", ICML 2023, arXiv:2206.05199.

An audit runs a membership test ``n_negative`` times on non-members (``fp`` false positives)
and ``n_positive`` times on members (``fn`` false negatives). With FP ~ Bin(n_negative, alpha),
FN ~ Bin(n_positive, beta) and independent Beta priors, the posteriors are

    alpha | fp ~ Beta(a0 + fp, b0 + n_negative - fp),   beta | fn ~ Beta(a0 + fn, b0 + n_positive - fn),

and the posterior of ``eps = epsilon_from_rates(alpha, beta, delta)`` is their push-forward.
Its CDF is a 1-D integral, since ``eps <= e`` (e >= 0) iff (alpha, beta) lies in

    R_e = {beta >= (1 - delta - alpha) e^-e  and  beta >= 1 - delta - e^e alpha},

and (the symmetric region: the flipped attack obeys the same bounds)
``beta <= min(1 - (alpha - delta) e^-e, delta + e^e (1 - alpha))``, so
``P(eps <= e) = E_alpha[ S_beta(lower_e(alpha)) - S_beta(upper_e(alpha)) ]`` with ``S_beta`` the
Beta survival function; its derivative in e gives the density (:meth:`EpsilonPosterior.pdf`). ``method="integration"`` evaluates that expectation
by the midpoint rule in the quantile coordinate ``u = F_alpha(alpha)`` (the integrand is
monotone in u, so the error is at most ``1 / num_grid``) and samples eps by inverting the
tabulated CDF; ``method="monte_carlo"`` draws (alpha, beta) with ``jax.random.beta``.

Beyond the paper, :func:`gdp_posterior` infers mu of Gaussian DP from raw attack scores with
a numpyro model sampled by BlackJAX NUTS.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Literal, NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from probkit.privacy._checks import check_delta, check_level, check_positive_int, eps64_one_sided
from probkit.privacy.counts import resolve_counts
from probkit.privacy.regions import epsilon_from_rates, gdp_epsilon

__all__ = [
    "EpsilonPosterior", "epsilon_posterior", "rate_posteriors", "epsilon_posterior_cdf", "epsilon_density",
    "GDPPosterior", "gdp_posterior",
]

Prior = Union[str, Sequence[float]]

# Tail mass left outside the tabulated eps range (each side, per rate).
_TAIL = 1e-10
_PRIORS = {"jeffreys": (0.5, 0.5), "uniform": (1.0, 1.0)}


def rate_posteriors(fp, n_negative=None, fn=None, n_positive=None, prior: Prior = "jeffreys"):
    """Beta posterior parameters ``((a_alpha, b_alpha), (a_beta, b_beta))`` of the false-positive
    rate alpha and the false-negative rate beta under a Beta(a0, b0) prior on each. ``fp`` may be
    an :class:`~probkit.privacy.AuditCounts` (then leave the other counts out)."""
    (fp, n_negative, fn, n_positive), _ = resolve_counts(fp, n_negative, fn, n_positive, None, need_delta=False)
    try:
        a0, b0 = _PRIORS[prior] if isinstance(prior, str) else (float(v) for v in prior)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"prior must be 'jeffreys', 'uniform' or a pair (a, b); got {prior!r}") from None
    if not (np.isfinite(a0) and np.isfinite(b0) and a0 > 0 and b0 > 0):
        raise ValueError(f"prior Beta parameters must be finite and positive; got {prior!r}")
    return (a0 + fp, b0 + n_negative - fp), (a0 + fn, b0 + n_positive - fn)


def _posteriors(fp, n_negative, fn, n_positive, delta, prior: Prior) -> tuple[tuple, tuple, float]:
    """``(alpha posterior, beta posterior, delta)`` from counts (or an AuditCounts) and a checked delta."""
    counts, delta = resolve_counts(fp, n_negative, fn, n_positive, delta)
    return (*rate_posteriors(*counts, prior=prior), float(delta))


# Probit-space tabulation of the Beta survival function (see _cdf_table).
_Z_MAX = 8.5
_NUM_TABLE = 4097


def _midpoint(eps, alpha_post, delta: float, num_grid: int, integrand, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """``(e, E_alpha[integrand(*_region(alpha, e, delta))])`` for each e in ``eps`` by the midpoint
    rule in the quantile coordinate ``u = F_alpha(alpha)`` (nodes by the inverse incomplete Beta),
    in chunks that bound the (E, M) temporaries by ``budget`` entries (float64)."""
    e = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    alpha = special.betaincinv(alpha_post[0], alpha_post[1], (np.arange(num_grid) + 0.5) / num_grid)  # (M,)
    out = np.empty(e.shape)
    chunk = max(1, budget // num_grid)
    for start in range(0, e.size, chunk):
        rows = slice(start, start + chunk)
        out[rows] = integrand(*_region(alpha, np.maximum(e[rows, None], 0.0), delta)).mean(axis=-1)
    return e, out


def _cdf_table(eps, alpha_post, beta_post, delta: float, num_grid: int) -> np.ndarray:
    """P(eps <= e) for each e in ``eps`` by the quantile-coordinate midpoint rule (float64).

    Outer integral over alpha: :func:`_midpoint`. Inner integral over beta: the Beta survival
    function, tabulated once in probit space (nodes ``x_k = F^-1(Phi(z_k))`` on an even z-grid in
    [-8.5, 8.5]) and read as ``Phi(-z(x))`` with z(x) interpolated linearly, so the (E, M) grid
    costs one ``np.interp`` per point instead of one incomplete-Beta evaluation. Close to the
    posterior bulk a Beta CDF is nearly Gaussian, so z(x) is nearly linear and the interpolation
    error is O(h^2) with h = 17 / 4096 in z (below 1e-6 in probability); outside the table the
    survival function is 1 or 0 up to Phi(-8.5) ~ 1e-17. float64 throughout: posteriors of
    audits with 1e7 trials are concentrated to ~1e-4.
    """
    z = np.linspace(-_Z_MAX, _Z_MAX, _NUM_TABLE)
    x = np.maximum.accumulate(special.betaincinv(beta_post[0], beta_post[1], special.ndtr(z)))

    def sf(b):
        return special.ndtr(-np.interp(b, x, z, left=-40.0, right=40.0))

    e, out = _midpoint(eps, alpha_post, delta, num_grid,
                       lambda lower, upper, *_: np.maximum(sf(lower) - sf(upper), 0.0), 2_000_000)
    return np.where(e < 0, 0.0, out)


def _region(alpha, e, delta):
    """The (e, delta) region at FPR alpha: ``lower <= beta <= upper`` (float64, clipped to
    [0, 1]), and the derivatives of the two boundaries in e (0 where clipped)."""
    ex, emx = np.exp(e), np.exp(-e)
    l1, l2 = (1.0 - delta - alpha) * emx, 1.0 - delta - ex * alpha
    lower = np.maximum(l1, l2)
    d_lower = np.where(l1 >= l2, -l1, -ex * alpha)
    u1, u2 = 1.0 - (alpha - delta) * emx, delta + ex * (1.0 - alpha)
    upper = np.minimum(u1, u2)
    d_upper = np.where(u1 <= u2, (alpha - delta) * emx, ex * (1.0 - alpha))
    d_lower = np.where((lower > 0) & (lower < 1), d_lower, 0.0)
    d_upper = np.where((upper > 0) & (upper < 1), d_upper, 0.0)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0), d_lower, d_upper


def _pdf_table(eps, alpha_post, beta_post, delta: float, num_grid: int) -> np.ndarray:
    """Density of eps at ``eps > 0``: ``d/de P(eps <= e) = E_alpha[f_beta(upper) upper_e -
    f_beta(lower) lower_e]`` by the same quantile-coordinate midpoint rule (float64)."""
    dist = stats.beta(beta_post[0], beta_post[1])
    e, out = _midpoint(eps, alpha_post, delta, num_grid,
                       lambda lower, upper, d_lower, d_upper: dist.pdf(upper) * d_upper - dist.pdf(lower) * d_lower,
                       1_000_000)
    return np.where(e <= 0, 0.0, np.maximum(out, 0.0))


def epsilon_posterior_cdf(eps, fp, n_negative=None, fn=None, n_positive=None, delta=None,
                          prior: Prior = "jeffreys", num_grid: int = 8192):
    """Posterior CDF ``P(eps <= e | counts)`` by numerical integration (see module docstring).
    ``fp`` may be an :class:`~probkit.privacy.AuditCounts` (then pass ``delta``)."""
    return _cdf_table(eps, *_posteriors(fp, n_negative, fn, n_positive, delta, prior), num_grid)


def epsilon_density(eps, fp, n_negative=None, fn=None, n_positive=None, delta=None,
                    prior: Prior = "jeffreys", num_grid: int = 8192):
    """Posterior density of eps at ``eps > 0`` (the continuous part; the atom at 0 has mass
    ``epsilon_posterior_cdf(0, ...)``), by differentiating the CDF's integral in e under the
    integral sign (see module docstring). ``fp`` may be an :class:`~probkit.privacy.AuditCounts`."""
    return _pdf_table(eps, *_posteriors(fp, n_negative, fn, n_positive, delta, prior), num_grid)


@partial(jax.jit, static_argnames=("num_samples",))
def _mc_eps(key, alpha_post, beta_post, delta, num_samples: int):
    k1, k2 = jax.random.split(key)
    alpha = jax.random.beta(k1, alpha_post[0], alpha_post[1], (num_samples,))
    beta = jax.random.beta(k2, beta_post[0], beta_post[1], (num_samples,))
    return epsilon_from_rates(alpha, beta, delta), alpha, beta


@dataclasses.dataclass(frozen=True)
class EpsilonPosterior:
    """Posterior of eps given audit counts.

    ``samples`` are posterior draws of eps; ``grid``/``grid_cdf`` tabulate its CDF (exact
    integration for ``method="integration"``, the empirical CDF for ``"monte_carlo"``).
    ``alpha_posterior``/``beta_posterior`` are the Beta parameters of the two rates.
    """

    samples: jax.Array
    grid: np.ndarray
    grid_cdf: np.ndarray
    delta: float
    method: str
    alpha_posterior: tuple[float, float]
    beta_posterior: tuple[float, float]
    num_grid: int

    # -- distribution functions
    def cdf(self, eps) -> np.ndarray:
        """``P(eps <= e)`` (integration: evaluated exactly; Monte Carlo: empirical)."""
        if self.method == "integration":
            out = _cdf_table(eps, self.alpha_posterior, self.beta_posterior, self.delta, self.num_grid)
        else:
            s = np.sort(np.asarray(self.samples, np.float64))
            out = np.searchsorted(s, np.atleast_1d(np.asarray(eps, np.float64)), side="right") / s.size
        return out if np.ndim(eps) else out[0]

    def pdf(self, eps) -> np.ndarray:
        """Density of the continuous part at ``eps > 0`` (integration: exact derivative of the
        CDF integral; Monte Carlo: a Gaussian kernel density estimate of the draws above 0)."""
        if self.method == "integration":
            out = _pdf_table(eps, self.alpha_posterior, self.beta_posterior, self.delta, self.num_grid)
        else:
            s = np.asarray(self.samples, np.float64)
            pos = s[s > 0]
            e = np.atleast_1d(np.asarray(eps, np.float64))
            if pos.size < 2:
                out = np.zeros(e.shape)
            else:
                out = stats.gaussian_kde(pos)(e) * pos.size / s.size
                out = np.where(e <= 0, 0.0, out)
        return out if np.ndim(eps) else out[0]

    def prob_exceeds(self, eps_claimed) -> np.ndarray:
        """Posterior probability that the true eps exceeds ``eps_claimed`` (a claim's violation)."""
        return 1.0 - self.cdf(eps_claimed)

    def quantile(self, p) -> np.ndarray:
        """Inverse CDF (linear interpolation of the tabulated CDF)."""
        p = np.asarray(p, np.float64)
        if np.any((p < 0) | (p > 1)):
            raise ValueError(f"p must lie in [0, 1]; got {p!r}")
        return np.interp(p, self.grid_cdf, self.grid)

    # -- summaries
    @property
    def mean(self) -> float:
        """``E[eps] = int_0^inf (1 - F(e)) de`` on the table (integration) or the sample mean."""
        if self.method == "monte_carlo":
            return float(np.mean(np.asarray(self.samples, np.float64)))
        g, f = self.grid, self.grid_cdf
        return float(g[0] * (1 - f[0]) + np.sum(np.diff(g) * (1 - 0.5 * (f[1:] + f[:-1]))))

    @property
    def mode(self) -> float:
        """Mode of the continuous part of the density (a histogram of 256 bins between the 0.1%
        and 99.9% quantiles, from the CDF); an atom at eps = 0 has mass ``cdf(0)``."""
        lo, hi = self.quantile([0.001, 0.999])
        if hi <= lo:
            return float(lo)
        edges = np.linspace(lo, hi, 257)
        i = int(np.argmax(np.diff(self.cdf(edges))))  # the bin of largest mass
        return float(0.5 * (edges[i] + edges[i + 1]))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval."""
        check_level(level)
        lo, hi = self.quantile([(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    def hpd_interval(self, level: float = 0.95, num: int = 2001) -> tuple[float, float]:
        """Shortest interval of posterior mass ``level`` (the HPD interval of a unimodal
        density): minimise ``q(p + level) - q(p)`` over p in [0, 1 - level]."""
        check_level(level)
        p = np.linspace(0.0, 1.0 - level, num)
        lo, hi = self.quantile(p), self.quantile(p + level)
        i = int(np.argmin(hi - lo))
        return float(lo[i]), float(hi[i])

    def summary(self, level: float = 0.95) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "mode": self.mode,
            "median": float(self.quantile(0.5)),
            "level": level,
            "interval": self.interval(level),
            "hpd_interval": self.hpd_interval(level),
            "prob_zero": float(self.cdf(0.0)),
            "method": self.method,
        }


def epsilon_posterior(fp, n_negative: int | None = None, fn: int | None = None, n_positive: int | None = None,
                      delta: float | None = None, prior: Prior = "jeffreys", num_samples: int = 100_000,
                      key: jax.Array | None = None, method: Literal["integration", "monte_carlo"] = "integration",
                      num_grid: int = 4096, num_eps: int = 512) -> EpsilonPosterior:
    """Posterior of eps from the counts of a membership-inference audit.

    Args:
      fp, n_negative: false positives among ``n_negative`` non-member trials (alpha = FPR).
        ``fp`` may instead be an :class:`~probkit.privacy.AuditCounts`: ``epsilon_posterior(counts,
        delta)`` or ``epsilon_posterior(counts, delta=...)``.
      fn, n_positive: false negatives among ``n_positive`` member trials (beta = FNR).
      delta: the delta of the (eps, delta) claim, in [0, 1) (0: pure DP).
      prior: ``"jeffreys"`` (Beta(1/2, 1/2)), ``"uniform"`` (Beta(1, 1)) or a pair (a, b), the
        same Beta prior for both rates.
      num_samples: posterior draws of eps returned in ``samples``.
      key: PRNG key for the draws (required for Monte Carlo; for integration it only drives the
        inverse-CDF ``samples``, default ``PRNGKey(0)``).
      method: ``"integration"`` (the CDF by 1-D quadrature, error <= 1/num_grid; samples by
        inverse CDF) or ``"monte_carlo"`` (draws of (alpha, beta) pushed through the bound).
      num_grid: quadrature points over alpha; num_eps: points of the tabulated eps CDF.

    Returns:
      :class:`EpsilonPosterior` with ``samples``, ``mean``, ``mode``, ``interval(level)``,
      ``hpd_interval(level)``, ``prob_exceeds(eps)``, ``cdf(eps)``.
    """
    a_post, b_post, delta = _posteriors(fp, n_negative, fn, n_positive, delta, prior)
    num_samples = check_positive_int("num_samples", num_samples)
    if key is None:
        if method == "monte_carlo":
            raise ValueError("key (a jax PRNG key) is required for method='monte_carlo'")
        key = jax.random.PRNGKey(0)  # only used to draw ``samples`` by inverse CDF
    if method == "integration":
        # eps = max(eps_ll(alpha, beta), eps_ll(1 - beta, 1 - alpha)) with eps_ll decreasing in
        # both rates; 1 - beta and 1 - alpha have Beta posteriors with swapped parameters, so
        # both parts are bracketed by extreme posterior quantiles (in float64, no 1 - x rounding).
        def bound(p: float) -> float:  # eps at the p-quantiles of the rates (both halves)
            q = lambda post: stats.beta.ppf(p, *post)  # noqa: E731
            return float(max(eps64_one_sided(q(a_post), q(b_post), delta),
                             eps64_one_sided(q(b_post[::-1]), q(a_post[::-1]), delta)))

        hi, lo = bound(_TAIL), bound(1 - _TAIL)
        if not np.isfinite(hi):
            raise ValueError("posterior of eps has unbounded support at this delta (rates near 0)")
        grid = np.unique(np.concatenate([[0.0], np.linspace(lo, max(hi, lo + 1e-12), num_eps)]))
        cdf = np.maximum.accumulate(_cdf_table(grid, a_post, b_post, delta, num_grid))
        cdf[-1] = 1.0
        # Inverse-CDF sampling; draws below F(0) land on the atom at 0.
        u = np.asarray(jax.random.uniform(key, (num_samples,), dtype=jnp.float32), np.float64)
        samples = jnp.asarray(np.interp(u, cdf, grid))
    elif method == "monte_carlo":
        samples, _, _ = _mc_eps(key, jnp.asarray(a_post, jnp.float32), jnp.asarray(b_post, jnp.float32),
                                jnp.float32(delta), int(num_samples))
        s = np.sort(np.asarray(samples, np.float64))
        grid, cdf = s, (np.arange(1, s.size + 1)) / s.size
    else:
        raise ValueError(f"method must be 'integration' or 'monte_carlo'; got {method!r}")
    return EpsilonPosterior(samples, grid, cdf, delta, method, a_post, b_post, num_grid)


# ----------------------------------------------------------------------------- beyond the paper
class GDPPosterior(NamedTuple):
    """Posterior draws of mu (Gaussian DP) and nuisance parameters, plus NUTS diagnostics."""

    mu: jax.Array  # (num_chains, num_samples)
    location: jax.Array
    scale: jax.Array
    acceptance_rate: jax.Array
    divergences: jax.Array

    def to_inference_data(self):
        """ArviZ InferenceData (lazy import) for ``az.summary`` / ``az.rhat`` / ``az.ess``: ``mu``,
        ``location`` and ``scale`` in ``posterior``; ``diverging`` and ``acceptance_rate`` in
        ``sample_stats``. Uses :func:`probkit.diagnostics.arviz.chains_to_inference_data`."""
        from probkit.diagnostics.arviz import chains_to_inference_data

        return chains_to_inference_data(
            {"mu": self.mu, "location": self.location, "scale": self.scale},
            sample_stats={"diverging": self.divergences, "acceptance_rate": self.acceptance_rate},
        )

    def diagnostics(self) -> dict[str, float]:
        """R-hat and bulk/tail ESS of mu (ArviZ, lazy import), and the divergence count."""
        import arviz as az

        idata = self.to_inference_data()
        return {
            "rhat": float(az.rhat(idata)["mu"]),
            "ess_bulk": float(az.ess(idata, method="bulk")["mu"]),
            "ess_tail": float(az.ess(idata, method="tail")["mu"]),
            "divergences": int(np.sum(np.asarray(self.divergences))),
        }

    def epsilon(self, delta: float) -> jax.Array:
        """Posterior draws of eps(delta) of mu-GDP."""
        check_delta(delta)
        return gdp_epsilon(delta, jnp.maximum(self.mu, 1e-6))


def _gdp_model(neg_scores, pos_scores):
    """Equal-variance Gaussian scores: non-members N(m, s^2), members N(m + mu s, s^2), so the
    optimal threshold attack has the mu-GDP trade-off curve. Weakly informative priors."""
    import numpyro
    import numpyro.distributions as dist

    m = numpyro.sample("location", dist.Normal(0.0, 10.0))
    s = numpyro.sample("scale", dist.HalfNormal(10.0))
    mu = numpyro.sample("mu", dist.HalfNormal(5.0))
    numpyro.sample("neg", dist.Normal(m, s), obs=neg_scores)
    numpyro.sample("pos", dist.Normal(m + mu * s, s), obs=pos_scores)


def gdp_posterior(key: jax.Array, neg_scores, pos_scores, num_samples: int = 1000, num_warmup: int = 500,
                  num_chains: int = 2) -> GDPPosterior:
    """Posterior of mu (Gaussian DP; Dong, Roth & Su 2019, arXiv:1905.02383) from raw attack
    scores of non-members (``neg_scores``) and members (``pos_scores``).

    The numpyro model's potential (``numpyro.infer.util.initialize_model``, unconstrained space)
    is sampled with BlackJAX NUTS after ``blackjax.window_adaptation``; chains are vmapped.
    Beyond Zanella-Béguelin et al. (2023), who use counts only.
    """
    import blackjax
    from numpyro.infer.util import initialize_model

    for name, v in (("num_samples", num_samples), ("num_warmup", num_warmup), ("num_chains", num_chains)):
        check_positive_int(name, v)
    neg = jnp.asarray(neg_scores, jnp.float32)
    pos = jnp.asarray(pos_scores, jnp.float32)
    for name, v in (("neg_scores", neg), ("pos_scores", pos)):
        if v.ndim != 1 or v.size < 2 or not bool(jnp.all(jnp.isfinite(v))):
            raise ValueError(f"{name} must be a 1-D array of at least 2 finite scores")
    k_init, k_adapt, k_run = jax.random.split(key, 3)
    # One initial point per chain (initialize_model vmaps over a batch of keys).
    init = initialize_model(jax.random.split(k_init, num_chains), _gdp_model, model_args=(neg, pos), dynamic_args=False)

    def logdensity(z):
        return -init.potential_fn(z)

    def one_chain(z0, k_a, k_r):
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity)
        (state, params), _ = adapt.run(k_a, z0, num_steps=num_warmup)
        kernel = blackjax.nuts(logdensity, **params)

        def step(st, k):
            st, info = kernel.step(k, st)
            return st, (st.position, info.acceptance_rate, info.is_divergent)

        _, (pos_z, acc, div) = jax.lax.scan(step, state, jax.random.split(k_r, num_samples))
        return jax.vmap(init.postprocess_fn)(pos_z), acc, div

    draws, acc, div = jax.vmap(one_chain)(
        init.param_info.z, jax.random.split(k_adapt, num_chains), jax.random.split(k_run, num_chains)
    )
    return GDPPosterior(draws["mu"], draws["location"], draws["scale"], acc, div)
