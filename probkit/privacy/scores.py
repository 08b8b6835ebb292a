"""Privacy audits from raw attack scores: honest threshold choice and privacy curves with bands.

From one membership score per trial and its label (1: member), :func:`audit_from_scores` picks
the test "member iff score > t" (or its flip, "member iff score <= t") on a calibration split,
where a conservative eps estimate (the Jeffreys upper ``level``-quantiles of both rates plugged
into the bound) is largest, then on the held-out rest, where the counts are honest binomials,
computes the posterior of eps (Zanella-Béguelin et al. 2023, "Bayesian Estimation of
Differential Privacy", ICML, arXiv:2206.05199), its credible band and the Clopper-Pearson
bounds: a threshold chosen on the data that then estimates eps biases the estimate upward. The
attack's rates also bound mu of Gaussian DP, ``mu >= |Phi^-1(FPR) + Phi^-1(FNR)|`` (Dong, Roth &
Su 2019, arXiv:1905.02383), which gives an eps(delta) band for every delta at once where the
mechanism is mu-GDP. The privacy guide (``docs/privacy.md``, "Audits from raw scores") details
simultaneous bands, ``split=None`` with its Bonferroni correction, and the probit-slope check.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from probkit.privacy._checks import check_delta, check_level, check_positive_int, check_scores_labels, eps64_one_sided
from probkit.privacy.bayes import EpsilonPosterior, epsilon_posterior
from probkit.privacy.counts import AuditCounts
from probkit.privacy.frequentist import clopper_pearson_epsilon, epsilon_confidence_interval
from probkit.privacy.regions import gdp_epsilon

__all__ = ["roc_counts", "candidate_thresholds", "ScoreAudit", "audit_from_scores"]

Array = jax.Array


@jax.jit
def _count(neg_sorted, pos_sorted, thresholds):
    fp = neg_sorted.shape[0] - jnp.searchsorted(neg_sorted, thresholds, side="right")
    fn = jnp.searchsorted(pos_sorted, thresholds, side="right")
    return fp, fn


def roc_counts(neg_scores, pos_scores, thresholds) -> AuditCounts:
    """Counts of "member iff score > t" for every t in ``thresholds``: ``AuditCounts`` whose
    ``fp``/``fn`` are arrays of the thresholds' shape. One sort per class and a binary search
    per threshold (O((n + T) log n)), in float64 JAX so ties are exact."""
    with jax.enable_x64(True):
        neg = jnp.sort(jnp.asarray(neg_scores, jnp.float64))
        pos = jnp.sort(jnp.asarray(pos_scores, jnp.float64))
        fp, fn = _count(neg, pos, jnp.asarray(thresholds, jnp.float64))
        return AuditCounts(np.asarray(fp), int(neg.shape[0]), np.asarray(fn), int(pos.shape[0]))


def candidate_thresholds(scores, num: int) -> np.ndarray:
    """``num`` candidate thresholds: quantiles of ``scores`` at probabilities log-spaced towards
    both tails (where the best attacks at small delta sit) and linear in the middle, plus the
    smallest and largest score; duplicates removed."""
    num = check_positive_int("thresholds", num)
    s = np.asarray(scores, np.float64)
    k = max(num // 3, 1)
    tail = np.logspace(np.log10(1.0 / (s.size + 1)), np.log10(0.25), k)
    probs = np.concatenate([tail, np.linspace(0.25, 0.75, max(num - 2 * k, 1)), 1.0 - tail])
    return np.unique(np.concatenate([np.quantile(s, np.clip(probs, 0.0, 1.0)), [s.min(), s.max()]]))


def _jeffreys_bounds(k, n, level):
    """Jeffreys lower and upper ``level`` quantiles of a rate (vectorised, float64)."""
    k = np.asarray(k, np.float64)
    return special.betaincinv(k + 0.5, n - k + 0.5, 1.0 - level), special.betaincinv(k + 0.5, n - k + 0.5, level)


def _select(counts: AuditCounts, level: float, plain_fn, flipped_fn):
    """Per row of the criteria: index of the threshold maximising a conservative estimate (the
    Jeffreys ``level`` bounds of both rates plugged into ``plain_fn(a_hi, b_hi)`` or, for the
    flipped attack, ``flipped_fn(a_lo, b_lo)``), and whether the flipped attack is the stronger one.
    ``counts`` has T thresholds; the criteria have shape ``(rows, T)``."""
    a_lo, a_hi = _jeffreys_bounds(counts.fp, counts.n_negative, level)
    b_lo, b_hi = _jeffreys_bounds(counts.fn, counts.n_positive, level)
    plain, flipped = np.atleast_2d(plain_fn(a_hi, b_hi)), np.atleast_2d(flipped_fn(a_lo, b_lo))
    crit = np.maximum(plain, flipped)
    idx = np.argmax(np.where(np.isfinite(crit), crit, -np.inf), axis=1)
    rows = np.arange(crit.shape[0])
    return idx, flipped[rows, idx] > plain[rows, idx]


@dataclasses.dataclass(frozen=True)
class ScoreAudit:
    """Result of :func:`audit_from_scores` (arrays indexed like ``deltas``).

    ``eps_lower``/``eps_upper``: the credible band of the privacy curve at ``band_level``;
    ``eps_median``/``eps_mean``: posterior summaries; ``cp_lower``: one-sided Clopper-Pearson
    lower bounds at ``level``; ``cp_interval``: two-sided Clopper-Pearson intervals;
    ``thresholds``/``flipped``: the attack used at each delta (member iff score > t, or <= t
    when flipped); ``counts``: its held-out counts; ``posteriors``: the
    :class:`~probkit.privacy.EpsilonPosterior` per delta. ``roc``: held-out (FPR, TPR) over the
    candidate thresholds. ``gdp``: the mu-GDP posterior summary (or None).
    """

    deltas: np.ndarray
    level: float
    band_level: float
    honest: bool
    thresholds: np.ndarray
    flipped: np.ndarray
    counts: tuple[AuditCounts, ...]
    eps_median: np.ndarray
    eps_mean: np.ndarray
    eps_lower: np.ndarray
    eps_upper: np.ndarray
    cp_lower: np.ndarray
    cp_interval: np.ndarray
    posteriors: tuple[EpsilonPosterior, ...]
    roc: tuple[np.ndarray, np.ndarray]
    n_calibration: tuple[int, int]
    n_heldout: tuple[int, int]
    gdp: dict[str, Any] | None

    def delta_index(self, delta: float) -> int:
        """Position of ``delta`` among the audited deltas (ValueError if absent)."""
        hits = np.flatnonzero(np.isclose(self.deltas, float(delta), rtol=1e-9, atol=0.0))
        if hits.size == 0:
            raise ValueError(f"delta={delta!r} is not among the audited deltas {self.deltas.tolist()}")
        return int(hits[0])

    def posterior(self, delta: float) -> EpsilonPosterior:
        """The eps posterior at one of the audited deltas."""
        return self.posteriors[self.delta_index(delta)]

    def prob_exceeds(self, eps: float, delta: float) -> float:
        """Posterior probability that eps at ``delta`` exceeds ``eps``: the verdict on an
        (eps, delta) claim (the claim is refuted with this probability)."""
        return float(self.posterior(delta).prob_exceeds(eps))

    def verdict(self, eps: float, delta: float) -> dict[str, Any]:
        """Summary of a claimed (eps, delta): P(eps > claim), the band and the CP lower bound."""
        i = self.delta_index(delta)
        p = self.prob_exceeds(eps, delta)
        return {
            "claimed_eps": float(eps), "claimed_delta": float(delta), "prob_eps_exceeds_claim": p,
            "credible_band": [float(self.eps_lower[i]), float(self.eps_upper[i])],
            "clopper_pearson_lower": float(self.cp_lower[i]),
            "refuted_by_clopper_pearson": bool(self.cp_lower[i] > eps),
            "honest": self.honest,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no posterior draws)."""
        return {
            "deltas": self.deltas.tolist(), "level": self.level, "band_level": self.band_level,
            "honest": self.honest, "thresholds": self.thresholds.tolist(), "flipped": self.flipped.tolist(),
            "counts": [c.to_dict() for c in self.counts],
            "eps_median": self.eps_median.tolist(), "eps_mean": self.eps_mean.tolist(),
            "eps_lower": self.eps_lower.tolist(), "eps_upper": self.eps_upper.tolist(),
            "clopper_pearson_lower": [_finite_or_str(v) for v in self.cp_lower],
            "clopper_pearson_interval": [[_finite_or_str(v) for v in row] for row in self.cp_interval],
            "n_calibration": {"non_members": self.n_calibration[0], "members": self.n_calibration[1]},
            "n_heldout": {"non_members": self.n_heldout[0], "members": self.n_heldout[1]},
            "gdp": self.gdp,
        }


def _finite_or_str(v) -> float | str:
    v = float(v)
    return v if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def _split_masks(key, lab: np.ndarray, split) -> np.ndarray | None:
    """Boolean mask of calibration rows (stratified random split), or None for in-sample."""
    if split is None:
        return None
    if isinstance(split, (np.ndarray, jax.Array, list, tuple)):
        m = np.asarray(split)
        if m.dtype != bool or m.shape != lab.shape:
            raise ValueError(f"split as a mask must be a boolean array of shape {lab.shape}; got {m.dtype} {m.shape}")
        return m
    if isinstance(split, bool) or not isinstance(split, (int, float, np.integer, np.floating)) or not 0 < split < 1:
        raise ValueError(f"split must be a fraction in (0, 1), a boolean mask or None; got {split!r}")
    u = np.asarray(jax.random.uniform(key, lab.shape, dtype=jnp.float32))
    mask = np.zeros(lab.shape, bool)
    for cls in (False, True):
        idx = np.flatnonzero(lab == cls)
        order = idx[np.argsort(u[idx], kind="stable")]
        mask[order[: int(round(float(split) * idx.size))]] = True
    return mask


def audit_from_scores(
    scores,
    labels,
    *,
    deltas,
    level: float = 0.95,
    split: float | np.ndarray | None = 0.5,
    thresholds: int | Sequence[float] = 100,
    simultaneous: bool = False,
    correction: str = "bonferroni",
    prior="jeffreys",
    gdp: bool = True,
    key: Array | None = None,
    num_grid: int = 2048,
) -> ScoreAudit:
    """Privacy audit from raw attack scores: eps(delta) posteriors and bounds, honestly.

    Args:
      scores: one attack score per trial (higher: "member" more likely), 1-D, finite.
      labels: 0 (non-member) / 1 (member) per trial; both classes needed.
      deltas: delta values of the privacy curve (each in [0, 1); 0 is pure DP).
      level: credible / confidence level (band, Clopper-Pearson bounds and the selection rule).
      split: fraction of each class used to choose thresholds (the rest estimates eps; default
        0.5), a boolean mask of calibration rows, or None to use all the data for both (see
        ``correction``).
      thresholds: number of candidate thresholds (quantiles of the calibration scores, dense in
        the tails) or an explicit array.
      simultaneous: Bonferroni bands holding jointly over all deltas (level ``1 - (1 -
        level) / D`` per delta) instead of pointwise bands.
      correction: with ``split=None``, ``"bonferroni"`` corrects the Clopper-Pearson lower bound
        for the choice among the T candidates; ``"none"`` shows the naive (inflated) value.
      prior: Beta prior of the rates (see :func:`~probkit.privacy.epsilon_posterior`).
      gdp: also compute the mu-GDP posterior and its eps(delta) band.
      key: PRNG key of the random split and the GDP draws (default: a fixed key).
      num_grid: quadrature points of each eps posterior.

    Returns:
      :class:`ScoreAudit` (``verdict(eps, delta)`` gives P(eps > claim); ``to_dict()`` is JSON).
    """
    s, lab = check_scores_labels(scores, labels)
    d = np.atleast_1d(np.asarray(deltas, np.float64))
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"deltas must be a non-empty 1-D sequence; got shape {d.shape}")
    check_delta(d, name="deltas")
    check_level(level)
    if correction not in ("bonferroni", "none"):
        raise ValueError(f"correction must be 'bonferroni' or 'none'; got {correction!r}")
    # Default: a fixed key folded with a constant, so it does not coincide with the PRNGKey(0)
    # a user may have drawn the scores from (reused keys give correlated draws).
    key = jax.random.fold_in(jax.random.PRNGKey(0), 0x5CE5) if key is None else key
    k_split, k_gdp = jax.random.split(key)
    mask = _split_masks(k_split, lab, split)
    cal, held = (np.ones(lab.shape, bool),) * 2 if mask is None else (mask, ~mask)
    for name, m in (("calibration", cal), ("held-out", held)):
        if not (np.any(m & lab) and np.any(m & ~lab)):
            raise ValueError(f"split leaves the {name} part without both classes; use more data or another split")
    cal_neg, cal_pos = s[cal & ~lab], s[cal & lab]
    held_neg, held_pos = s[held & ~lab], s[held & lab]

    if np.ndim(thresholds) == 0:
        cand = candidate_thresholds(np.concatenate([cal_neg, cal_pos]), thresholds)
    else:
        cand = np.unique(np.asarray(thresholds, np.float64))
        if cand.ndim != 1 or cand.size == 0 or not np.all(np.isfinite(cand)):
            raise ValueError("thresholds must be a positive integer or a non-empty 1-D array of finite values")
    cal_counts = roc_counts(cal_neg, cal_pos, cand)
    held_counts = roc_counts(held_neg, held_pos, cand)
    idx, flip = _select(cal_counts, level, lambda a, b: eps64_one_sided(a, b, d[:, None]),
                        lambda a, b: eps64_one_sided(1.0 - b, 1.0 - a, d[:, None]))

    band_level = 1.0 - (1.0 - level) / d.size if simultaneous else level
    cp_level = 1.0 - (1.0 - level) / cand.size if mask is None and correction == "bonferroni" else level
    counts, posts = [], []
    med, mean, lo, hi, cp = (np.empty(d.size) for _ in range(5))
    cpi = np.empty((d.size, 2))
    for j, (i, f, delta) in enumerate(zip(idx, flip, d)):
        c = AuditCounts(int(held_counts.fp[i]), held_counts.n_negative, int(held_counts.fn[i]), held_counts.n_positive)
        if f:
            c = c.flipped()
        counts.append(c)
        post = epsilon_posterior(c, float(delta), prior=prior, num_samples=64, num_grid=num_grid, num_eps=256)
        posts.append(post)
        med[j], mean[j] = float(post.quantile(0.5)), post.mean
        lo[j], hi[j] = post.interval(band_level)
        cp[j] = clopper_pearson_epsilon(c, float(delta), level=cp_level)
        cpi[j] = epsilon_confidence_interval(c, float(delta), level=level)

    gdp_summary = _gdp_summary(k_gdp, cal_counts, held_counts, d, level, band_level) if gdp else None
    return ScoreAudit(
        deltas=d, level=float(level), band_level=float(band_level), honest=mask is not None,
        thresholds=cand[idx], flipped=np.asarray(flip, bool), counts=tuple(counts), eps_median=med, eps_mean=mean,
        eps_lower=lo, eps_upper=hi, cp_lower=cp, cp_interval=cpi, posteriors=tuple(posts),
        roc=(held_counts.fpr, 1.0 - held_counts.fnr),
        n_calibration=(int(cal_neg.size), int(cal_pos.size)), n_heldout=(int(held_neg.size), int(held_pos.size)),
        gdp=gdp_summary,
    )


_gdp_epsilon_jit = jax.jit(gdp_epsilon)  # one compilation instead of one per primitive


def _gdp_summary(key, cal_counts: AuditCounts, held_counts: AuditCounts, deltas, level, band_level,
                 num_draws: int = 20000) -> dict[str, Any]:
    """Posterior of the mu-GDP lower bound ``|Phi^-1(FPR) + Phi^-1(FNR)|`` at the threshold
    chosen on calibration data (Jeffreys posteriors of the held-out rates, Monte Carlo in JAX),
    its eps(delta) band, and the probit slope of the held-out ROC (1 for a binormal,
    equal-variance ROC: the case where one mu describes every threshold)."""
    i = int(_select(cal_counts, max(level, 0.99), lambda a, b: -special.ndtri(a) - special.ndtri(b),
                    lambda a, b: special.ndtri(a) + special.ndtri(b))[0][0])
    fp, fn = float(held_counts.fp[i]), float(held_counts.fn[i])
    nn, npos = held_counts.n_negative, held_counts.n_positive
    # Draws from the Jeffreys posteriors (NumPy generator seeded from the JAX key); eps(delta)
    # of mu-GDP increases with mu, so its quantiles are gdp_epsilon at mu's quantiles.
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    a = rng.beta(fp + 0.5, nn - fp + 0.5, num_draws)
    b = rng.beta(fn + 0.5, npos - fn + 0.5, num_draws)
    mu = np.abs(special.ndtri(a) + special.ndtri(b))
    mu_q = np.quantile(mu, [(1.0 - band_level) / 2.0, 0.5, (1.0 + band_level) / 2.0])
    with jax.enable_x64(True):
        eps_q = np.asarray(_gdp_epsilon_jit(jnp.asarray(deltas)[:, None], jnp.maximum(jnp.asarray(mu_q), 1e-9)[None, :]))
    # probit slope of the held-out ROC over thresholds with >= 20 counts on each side
    ok = (held_counts.fp >= 20) & (held_counts.fp <= nn - 20) & (held_counts.fn >= 20) & (held_counts.fn <= npos - 20)
    slope = (float(np.polyfit(special.ndtri(held_counts.fpr[ok]), special.ndtri(1.0 - held_counts.fnr[ok]), 1)[0])
             if ok.sum() >= 3 else float("nan"))
    return {
        "mu_mean": float(mu.mean()), "mu_interval": [float(v) for v in np.quantile(mu, [(1 - level) / 2, (1 + level) / 2])],
        "mu_lower": float(np.quantile(mu, 1.0 - level)),
        "eps_lower": eps_q[:, 0].tolist(), "eps_median": eps_q[:, 1].tolist(), "eps_upper": eps_q[:, 2].tolist(),
        "threshold_index": int(i), "probit_slope": slope,
    }
