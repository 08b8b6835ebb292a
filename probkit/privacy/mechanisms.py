"""Simulated mechanisms with known eps, simulated audits, and the multi-sample heuristic.

The mechanisms emit attack scores whose optimal threshold test has a known trade-off curve,
hence a known eps(delta): ground truth for coverage studies (Dong, Roth & Su 2019,
arXiv:1905.02383). :func:`multi_sample_counts` simulates the multi-sample heuristic of
Zanella-Béguelin et al. (2023, "Bayesian Estimation of Differential Privacy", ICML,
arXiv:2206.05199, Sec. 5).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from jax.scipy.stats import laplace

from probkit.privacy._checks import check_delta, check_positive_int
from probkit.privacy.counts import AuditCounts
from probkit.privacy.regions import (epsilon_from_rates, gaussian_tradeoff, gdp_epsilon, laplace_tradeoff,
                                     randomized_response_tradeoff)

__all__ = [
    "GaussianMechanism", "LaplaceMechanism", "RandomizedResponse", "Mechanism", "simulate_scores",
    "simulate_counts", "best_threshold", "multi_sample_counts",
]

Array = jax.Array


# ----------------------------------------------------------------------------- mechanisms
@dataclasses.dataclass(frozen=True)
class GaussianMechanism:
    """Gaussian mechanism with ``mu = sensitivity / sigma``: scores N(0, 1) without the record,
    N(mu, 1) with it. Its trade-off curve is G_mu, so it is mu-GDP and exactly
    (eps, gdp_delta(eps, mu))-DP (Dong, Roth & Su 2019, arXiv:1905.02383)."""

    mu: float

    def sample(self, key: Array, member: Array) -> Array:
        return jax.random.normal(key, jnp.shape(member)) + self.mu * member

    def rates(self, threshold) -> tuple[Array, Array]:
        """(FPR, FNR) of the test "member iff score > threshold"."""
        t = jnp.asarray(threshold, jnp.result_type(float))
        return ndtr(-t), ndtr(t - self.mu)

    def tradeoff(self, alpha) -> Array:
        return gaussian_tradeoff(alpha, self.mu)

    def epsilon(self, delta: float) -> float:
        """eps(delta) of mu-GDP (``inf`` at delta = 0: the Gaussian mechanism is not pure DP)."""
        check_delta(delta)
        return float(gdp_epsilon(delta, self.mu))


@dataclasses.dataclass(frozen=True)
class LaplaceMechanism:
    """Laplace mechanism with ``epsilon = sensitivity / scale``: scores Lap(0, 1) vs Lap(eps, 1);
    pure eps-DP (its eps(delta) for delta > 0 is smaller and comes from the trade-off curve)."""

    eps: float

    def sample(self, key: Array, member: Array) -> Array:
        return jax.random.laplace(key, jnp.shape(member)) + self.eps * member

    def rates(self, threshold) -> tuple[Array, Array]:
        t = jnp.asarray(threshold, jnp.result_type(float))
        return 1.0 - laplace.cdf(t), laplace.cdf(t - self.eps)

    def tradeoff(self, alpha) -> Array:
        return laplace_tradeoff(alpha, self.eps)

    def epsilon(self, delta: float) -> float:
        """eps(delta) = max(eps + 2 log(1 - delta), 0): the sup over thresholds of the rates'
        bound (delta(e) = 1 - exp((e - eps) / 2) for e <= eps; checked against
        ``tradeoff_epsilon`` in the tests)."""
        check_delta(delta)
        return float(max(self.eps + 2.0 * np.log1p(-delta), 0.0))


@dataclasses.dataclass(frozen=True)
class RandomizedResponse:
    """Binary randomized response: the true membership bit is reported with probability
    e^eps / (1 + e^eps). The score is the reported bit; threshold 1/2 is optimal and its rates
    (1 - p, 1 - p) sit exactly on the (eps, 0) boundary."""

    eps: float

    def _p(self) -> float:
        return float(np.exp(self.eps) / (1.0 + np.exp(self.eps)))

    def sample(self, key: Array, member: Array) -> Array:
        keep = jax.random.bernoulli(key, self._p(), jnp.shape(member))
        m = jnp.asarray(member, bool)
        return jnp.where(keep, m, ~m).astype(jnp.float32)

    def rates(self, threshold) -> tuple[Array, Array]:
        t = jnp.asarray(threshold, jnp.result_type(float))
        p = self._p()
        fpr = jnp.where(t < 0, 1.0, jnp.where(t < 1, 1 - p, 0.0))
        fnr = jnp.where(t < 0, 0.0, jnp.where(t < 1, 1 - p, 1.0))
        return fpr, fnr

    def tradeoff(self, alpha) -> Array:
        return randomized_response_tradeoff(alpha, self.eps)

    def epsilon(self, delta: float) -> float:
        """(eps, 0)-DP; for delta > 0 the tight value is log((p - delta) / (1 - p))."""
        check_delta(delta)
        p = self._p()
        return float(max(np.log((p - delta) / (1 - p)), 0.0))


Mechanism = GaussianMechanism | LaplaceMechanism | RandomizedResponse


def simulate_scores(key: Array, mechanism: Mechanism, n_negative: int, n_positive: int) -> tuple[Array, Array]:
    """Raw attack scores: ``(negative_scores (n_negative,), positive_scores (n_positive,))``."""
    n_negative, n_positive = check_positive_int("n_negative", n_negative), check_positive_int("n_positive", n_positive)
    k1, k2 = jax.random.split(key)
    return mechanism.sample(k1, jnp.zeros(n_negative)), mechanism.sample(k2, jnp.ones(n_positive))


def simulate_counts(
    key: Array, mechanism: Mechanism, n_negative: int, n_positive: int, threshold: float, num_audits: int = 1
) -> AuditCounts:
    """``num_audits`` independent audits of the threshold test, drawn exactly as
    FP ~ Bin(n_negative, FPR(threshold)), FN ~ Bin(n_positive, FNR(threshold)) (vectorised)."""
    n_negative, n_positive = check_positive_int("n_negative", n_negative), check_positive_int("n_positive", n_positive)
    num_audits = check_positive_int("num_audits", num_audits)
    fpr, fnr = mechanism.rates(threshold)
    k1, k2 = jax.random.split(key)
    fp = jax.random.binomial(k1, n_negative, fpr, (num_audits,)).astype(jnp.int32)
    fn = jax.random.binomial(k2, n_positive, fnr, (num_audits,)).astype(jnp.int32)
    return AuditCounts(fp, n_negative, fn, n_positive)


def best_threshold(mechanism: Mechanism, delta: float, lo: float = -10.0, hi: float = 20.0, num: int = 10001) -> float:
    """Threshold whose exact rates give the largest ``epsilon_from_rates`` at ``delta``: the
    attack under which the estimand (eps of the attack) equals the mechanism's eps(delta) for
    mechanisms with a monotone likelihood ratio (all three here)."""
    check_delta(delta)
    with jax.enable_x64(True):  # 1 - delta is not resolved in float32 for small delta
        t = jnp.linspace(lo, hi, num)
        fpr, fnr = mechanism.rates(t)
        eps = epsilon_from_rates(jnp.clip(fpr.astype(jnp.float64), 0, 1), jnp.clip(fnr.astype(jnp.float64), 0, 1), delta)
        eps = jnp.where(jnp.isfinite(eps), eps, -1.0)
        return float(t[jnp.argmax(eps)])


def _multi_sample(key: Array, mu: float, num_models: int, k: int, threshold, correlation) -> tuple[Array, ...]:
    k_m, k_0, k_j = jax.random.split(key, 3)
    member = jax.random.bernoulli(k_m, 0.5, (num_models, k))
    z0 = jax.random.normal(k_0, (num_models, 1))
    zj = jax.random.normal(k_j, (num_models, k))
    score = mu * member + jnp.sqrt(correlation) * z0 + jnp.sqrt(1.0 - correlation) * zj
    guess = score > threshold
    n_pos = jnp.sum(member)
    return jnp.sum(guess & ~member), num_models * k - n_pos, jnp.sum(~guess & member), n_pos


def multi_sample_counts(
    key: Array,
    mechanism: GaussianMechanism,
    num_models: int,
    samples_per_model: int,
    threshold: float,
    correlation: float = 0.0,
    num_audits: int | None = None,
) -> AuditCounts:
    """The multi-sample heuristic on a Gaussian mechanism (Zanella-Béguelin et al. 2023, Sec. 5).

    Each of ``num_models`` runs releases one score per canary (``samples_per_model`` canaries,
    each present with probability 1/2): ``score_j = mu m_j + sqrt(rho) z_0 + sqrt(1 - rho) z_j``.
    With ``correlation = rho = 0`` the canaries are independent and the pooled counts are exact
    binomials with ``num_models * samples_per_model`` trials (the heuristic is exact); with
    ``rho > 0`` the noise shared within a model makes the counts overdispersed (design effect
    ~ 1 + (k - 1) corr), and intervals that treat them as binomial undercover.

    Returns pooled counts (n_negative and n_positive are random); Python ints for one audit, or
    arrays of shape ``(num_audits,)`` (vmapped) when ``num_audits`` is given.
    """
    num_models, k = check_positive_int("num_models", num_models), check_positive_int("samples_per_model", samples_per_model)
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must lie in [0, 1); got {correlation!r}")
    run = jax.jit(_multi_sample, static_argnums=(2, 3))
    if num_audits is None:
        return AuditCounts(*(int(v) for v in run(key, mechanism.mu, num_models, k, threshold, correlation)))
    keys = jax.random.split(key, check_positive_int("num_audits", num_audits))
    return AuditCounts(*jax.vmap(lambda kk: run(kk, mechanism.mu, num_models, k, threshold, correlation))(keys))
