"""Frequentist baselines: confidence bounds on an attack's error rates turned into eps bounds.

These are the intervals that Zanella-Béguelin et al. (2023, ICML, arXiv:2206.05199) compare
the Bayesian posterior against (Jagielski, Ullman & Oprea 2020, arXiv:2006.07709; Nasr et al.
2021, arXiv:2101.04535). ``eps(alpha, beta)`` (``epsilon_from_rates``) is decreasing in both
rates, so upper confidence bounds on the false-positive rate alpha and false-negative rate
beta give a lower confidence bound on eps, and lower bounds on the rates an upper bound.

Joint coverage of the two rates. FP ~ Bin(n_negative, alpha) and FN ~ Bin(n_positive, beta)
are independent, so two one-sided bounds at level ``sqrt(level)`` hold jointly with
probability exactly ``level`` (``correction="independent"``); the conservative Bonferroni
rule uses ``1 - (1 - level) / 2`` per rate (``correction="bonferroni"``, the default; the
paper's choice).

Worse-than-random attacks (``fp / n_negative + fn / n_positive > 1``) are bounded as their flip
(the symmetric region: rates (1 - beta, 1 - alpha), the same eps); a bound above the truth still
needs one of the rate bounds to fail. Computations are in float64 with ``scipy.stats`` (exact
Beta quantiles): these are reference values, not a hot path.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

from probkit.privacy._checks import check_level, eps64_one_sided
from probkit.privacy.counts import resolve_counts

__all__ = ["rate_interval", "clopper_pearson_epsilon", "epsilon_lower_bound", "epsilon_confidence_interval"]

Method = Literal["clopper_pearson", "jeffreys"]
Correction = Literal["bonferroni", "independent"]


def _per_rate_level(level: float, correction: str, num: int) -> float:
    if correction == "bonferroni":
        return 1.0 - (1.0 - level) / num
    if correction == "independent":
        return level ** (1.0 / num)
    raise ValueError(f"correction must be 'bonferroni' or 'independent'; got {correction!r}")


def rate_interval(k: int, n: int, level: float = 0.95, method: Method = "clopper_pearson", sided: str = "two"):
    """Confidence interval ``(lo, hi)`` for a binomial rate from ``k`` successes in ``n`` trials.

    ``clopper_pearson`` (exact, Clopper & Pearson 1934): ``lo = B^{-1}(a; k, n-k+1)``,
    ``hi = B^{-1}(1-a; k+1, n-k)``; ``jeffreys``: quantiles of Beta(k + 1/2, n - k + 1/2)
    (Brown, Cai & DasGupta 2001). ``sided="two"`` puts ``(1-level)/2`` in each tail;
    ``"upper"``/``"lower"`` give one-sided bounds (the other end is 0 or 1).
    """
    check_level(level)
    tail = (1.0 - level) / 2.0 if sided == "two" else 1.0 - level
    if sided not in ("two", "upper", "lower"):
        raise ValueError(f"sided must be 'two', 'upper' or 'lower'; got {sided!r}")
    # Beta parameters of the lower and the upper end
    ends = {"clopper_pearson": ((k, n - k + 1), (k + 1, n - k)), "jeffreys": ((k + 0.5, n - k + 0.5),) * 2}
    if method not in ends:
        raise ValueError(f"method must be 'clopper_pearson' or 'jeffreys'; got {method!r}")
    lo = stats.beta.ppf(tail, *ends[method][0]) if k > 0 else 0.0
    hi = stats.beta.ppf(1.0 - tail, *ends[method][1]) if k < n else 1.0
    if sided == "upper":
        lo = 0.0
    elif sided == "lower":
        hi = 1.0
    return float(lo), float(hi)


def _katz_lower(fp, n_negative, fn, n_positive, delta, level):
    """Katz-log lower bound on ``log((1 - delta - alpha) / beta)`` (and the symmetric ratio).

    Katz et al. (1978): ``log(p1/p2)`` is asymptotically normal with variance
    ``(1-p1)/x1 + (1-p2)/x2``; here p1 = TN/n_negative shifted by delta (the shift is ignored in
    the variance), p2 = FN/n_positive. Zero counts get a 1/2 continuity correction. Each of the
    two ratios gets ``(1 - level)/2`` (Bonferroni) so the max of the two is a level bound.
    """
    z = stats.norm.ppf(1.0 - (1.0 - level) / 2.0)

    def side(x1, n1, x2, n2):
        x1c, x2c = max(x1, 0.5), max(x2, 0.5)
        p1, p2 = x1c / n1, x2c / n2
        if p1 - delta <= 0:
            return 0.0
        se = np.sqrt(max(1.0 - p1, 0.0) / x1c + max(1.0 - p2, 0.0) / x2c)
        return float(np.log((p1 - delta) / p2) - z * se)

    tn, tp = n_negative - fp, n_positive - fn
    return max(side(tn, n_negative, fn, n_positive), side(tp, n_positive, fp, n_negative), 0.0)


def epsilon_lower_bound(fp, n_negative: int | None = None, fn: int | None = None, n_positive: int | None = None,
                        delta: float | None = None, level: float = 0.95, method: str = "clopper_pearson",
                        correction: Correction = "bonferroni") -> float:
    """One-sided lower confidence bound on eps at ``level``.

    ``method``: ``"clopper_pearson"`` or ``"jeffreys"`` (upper bounds on both rates, joined by
    ``correction``, plugged into ``epsilon_from_rates``) or ``"katz"`` (Katz-log bound on the
    rate ratios; asymptotic, so not guaranteed at small counts). ``fp`` may be an
    :class:`~probkit.privacy.AuditCounts`; a worse-than-random attack is flipped first (module
    docstring). ``delta = 0`` bounds pure DP.
    """
    (fp, n_negative, fn, n_positive), delta = resolve_counts(fp, n_negative, fn, n_positive, delta)
    check_level(level)
    if fp / n_negative + fn / n_positive > 1.0:  # a worse-than-random attack is bounded as its flip
        fp, fn = n_negative - fp, n_positive - fn
    if method == "katz":
        return _katz_lower(fp, n_negative, fn, n_positive, delta, level)
    per = _per_rate_level(level, correction, 2)
    a_hi = rate_interval(fp, n_negative, per, method, sided="upper")[1]
    b_hi = rate_interval(fn, n_positive, per, method, sided="upper")[1]
    return float(eps64_one_sided(a_hi, b_hi, delta))


def clopper_pearson_epsilon(fp, n_negative: int | None = None, fn: int | None = None, n_positive: int | None = None,
                            delta: float | None = None, level: float = 0.95,
                            correction: Correction = "bonferroni") -> float:
    """Clopper-Pearson lower confidence bound on eps (the paper's frequentist baseline).

    Upper CP bounds ``alpha_hi``, ``beta_hi`` on the false-positive / false-negative rates, each
    at one-sided level ``1 - (1 - level)/2`` (Bonferroni; ``correction="independent"`` uses
    ``sqrt(level)``), give ``eps >= epsilon_from_rates(alpha_hi, beta_hi, delta)`` with
    probability at least ``level``. ``fp`` may be an :class:`~probkit.privacy.AuditCounts`.
    """
    return epsilon_lower_bound(fp, n_negative, fn, n_positive, delta, level, "clopper_pearson", correction)


def epsilon_confidence_interval(fp, n_negative: int | None = None, fn: int | None = None,
                                n_positive: int | None = None, delta: float | None = None, level: float = 0.95,
                                method: Method = "clopper_pearson",
                                correction: Correction = "bonferroni") -> tuple[float, float]:
    """Two-sided confidence interval for ``eps(alpha, beta)`` at ``level``.

    Two-sided intervals ``[alpha_lo, alpha_hi]`` and ``[beta_lo, beta_hi]``, jointly at
    ``level`` (``correction``), give ``[eps(alpha_hi, beta_hi), eps(alpha_lo, beta_lo)]`` since
    eps decreases in both rates below the diagonal (and its flipped part increases above it, so
    the interval is ``[max(eps_ll(alpha_hi, beta_hi), eps_ll(1 - beta_lo, 1 - alpha_lo)),
    max(eps_ll(alpha_lo, beta_lo), eps_ll(1 - beta_hi, 1 - alpha_hi))]`` with eps_ll the
    lower-left bound). This is the interval whose width the paper compares with the Bayesian
    credible interval. ``fp`` may be an :class:`~probkit.privacy.AuditCounts`.
    """
    (fp, n_negative, fn, n_positive), delta = resolve_counts(fp, n_negative, fn, n_positive, delta)
    check_level(level)
    per = _per_rate_level(level, correction, 2)
    a_lo, a_hi = rate_interval(fp, n_negative, per, method)
    b_lo, b_hi = rate_interval(fn, n_positive, per, method)
    lo = max(eps64_one_sided(a_hi, b_hi, delta), eps64_one_sided(1.0 - b_lo, 1.0 - a_lo, delta))
    hi = max(eps64_one_sided(a_lo, b_lo, delta), eps64_one_sided(1.0 - b_hi, 1.0 - a_hi, delta))
    return float(lo), float(hi)
