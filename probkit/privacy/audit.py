"""Privacy audits: simulated mechanisms with known eps, the multi-sample heuristic, and DP-SGD.

An audit runs a membership test many times: ``n_negative`` trials where the target record is
absent (a "positive" guess is a false positive) and ``n_positive`` where it is present (a
"negative" guess is a false negative). The counts feed :func:`probkit.privacy.epsilon_posterior`
and :func:`probkit.privacy.clopper_pearson_epsilon` (Zanella-Béguelin et al. 2023, "Bayesian
Estimation of Differential Privacy", ICML, arXiv:2206.05199).

* Simulated mechanisms (:class:`GaussianMechanism`, :class:`LaplaceMechanism`,
  :class:`RandomizedResponse`) emit attack scores whose optimal threshold test has a known
  trade-off curve, hence a known eps(delta): ground truth for coverage studies.
* The multi-sample heuristic (:func:`multi_sample_counts`): several canaries per trained model,
  each present with probability 1/2, every canary's guess counted as a trial. Exact when the
  canaries' scores are independent; ``correlation > 0`` shows what shared noise does.
* :func:`dpsgd_audit`: train many small softmax-regression models at once (vmap over models)
  on scikit-learn's 8x8 digits with DP-SGD (Abadi et al. 2016, arXiv:1607.00133: Poisson
  sampling, per-example clipping, Gaussian noise), half with a canary; a loss-threshold test on
  the canary; eps estimated from the counts and set beside the RDP accountant of
  ``dp_accounting`` (Mironov 2017, arXiv:1702.07476) for the same noise, rate and steps.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import ndtr

from probkit.privacy.regions import (
    _check_delta,
    _check_level,
    epsilon_from_rates,
    gaussian_tradeoff,
    gdp_epsilon,
    laplace_tradeoff,
    randomized_response_tradeoff,
    tradeoff_epsilon,
)

__all__ = [
    "AuditCounts",
    "GaussianMechanism",
    "LaplaceMechanism",
    "RandomizedResponse",
    "simulate_scores",
    "simulate_counts",
    "counts_from_scores",
    "best_threshold",
    "multi_sample_counts",
    "accountant_epsilon",
    "DPSGDConfig",
    "DPSGDState",
    "dpsgd_init",
    "dpsgd_step",
    "train_dpsgd_models",
    "DPSGDAuditResult",
    "dpsgd_audit",
]

Array = jax.Array


class AuditCounts(NamedTuple):
    """Outcome counts of an audit (arrays of any common shape: one entry per audit)."""

    fp: Array
    n_negative: int
    fn: Array
    n_positive: int


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
        cdf = lambda x: jnp.where(x < 0, 0.5 * jnp.exp(jnp.minimum(x, 0.0)), 1 - 0.5 * jnp.exp(-jnp.maximum(x, 0.0)))  # noqa: E731
        return 1.0 - cdf(t), cdf(t - self.eps)

    def tradeoff(self, alpha) -> Array:
        return laplace_tradeoff(alpha, self.eps)

    def epsilon(self, delta: float) -> float:
        with jax.enable_x64(True):
            return float(tradeoff_epsilon(self.tradeoff, delta))


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
        # (eps, 0)-DP; for delta > 0 the tight value is log((p - delta) / (1 - p)).
        p = self._p()
        return float(max(np.log((p - delta) / (1 - p)), 0.0))


Mechanism = GaussianMechanism | LaplaceMechanism | RandomizedResponse


def _check_n(name: str, n) -> int:
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"{name} must be a positive integer; got {n!r}")
    return int(n)


def simulate_scores(key: Array, mechanism: Mechanism, n_negative: int, n_positive: int) -> tuple[Array, Array]:
    """Raw attack scores: ``(negative_scores (n_negative,), positive_scores (n_positive,))``."""
    n_negative, n_positive = _check_n("n_negative", n_negative), _check_n("n_positive", n_positive)
    k1, k2 = jax.random.split(key)
    neg = mechanism.sample(k1, jnp.zeros(n_negative))
    pos = mechanism.sample(k2, jnp.ones(n_positive))
    return neg, pos


def counts_from_scores(neg_scores, pos_scores, threshold) -> AuditCounts:
    """Counts of the test "member iff score > threshold"."""
    neg, pos = jnp.asarray(neg_scores), jnp.asarray(pos_scores)
    return AuditCounts(jnp.sum(neg > threshold, -1), neg.shape[-1], jnp.sum(pos <= threshold, -1), pos.shape[-1])


def simulate_counts(
    key: Array, mechanism: Mechanism, n_negative: int, n_positive: int, threshold: float, num_audits: int = 1
) -> AuditCounts:
    """``num_audits`` independent audits of the threshold test, drawn exactly as
    FP ~ Bin(n_negative, FPR(threshold)), FN ~ Bin(n_positive, FNR(threshold)) (vectorised)."""
    n_negative, n_positive = _check_n("n_negative", n_negative), _check_n("n_positive", n_positive)
    num_audits = _check_n("num_audits", num_audits)
    fpr, fnr = mechanism.rates(threshold)
    k1, k2 = jax.random.split(key)
    fp = jax.random.binomial(k1, n_negative, fpr, (num_audits,)).astype(jnp.int32)
    fn = jax.random.binomial(k2, n_positive, fnr, (num_audits,)).astype(jnp.int32)
    return AuditCounts(fp, n_negative, fn, n_positive)


def best_threshold(mechanism: Mechanism, delta: float, lo: float = -10.0, hi: float = 20.0, num: int = 10001) -> float:
    """Threshold whose exact rates give the largest ``epsilon_from_rates`` at ``delta``: the
    attack under which the estimand (eps of the attack) equals the mechanism's eps(delta) for
    mechanisms with a monotone likelihood ratio (all three here)."""
    _check_delta(delta)
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
    num_models, k = _check_n("num_models", num_models), _check_n("samples_per_model", samples_per_model)
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must lie in [0, 1); got {correlation!r}")
    run = jax.jit(_multi_sample, static_argnums=(2, 3))
    if num_audits is None:
        fp, nn, fn, npos = (int(v) for v in run(key, mechanism.mu, num_models, k, threshold, correlation))
        return AuditCounts(fp, nn, fn, npos)
    keys = jax.random.split(key, _check_n("num_audits", num_audits))
    fp, nn, fn, npos = jax.vmap(lambda kk: run(kk, mechanism.mu, num_models, k, threshold, correlation))(keys)
    return AuditCounts(fp, nn, fn, npos)


# ----------------------------------------------------------------------------- accountant
def accountant_epsilon(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Theoretical eps of DP-SGD (Poisson-subsampled Gaussian, composed ``steps`` times) from
    ``dp_accounting``: ``"rdp"`` (Mironov 2017) or ``"pld"`` (privacy-loss distributions, tighter)."""
    from dp_accounting import dp_event

    _check_delta(delta)
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be positive; got {noise_multiplier!r}")
    if not 0 < sampling_rate <= 1:
        raise ValueError(f"sampling_rate must lie in (0, 1]; got {sampling_rate!r}")
    _check_n("steps", steps)
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sampling_rate, dp_event.GaussianDpEvent(noise_multiplier)), steps
    )
    if accountant == "rdp":
        from dp_accounting.rdp import rdp_privacy_accountant

        acc = rdp_privacy_accountant.RdpAccountant()
    elif accountant == "pld":
        from dp_accounting.pld import pld_privacy_accountant

        acc = pld_privacy_accountant.PLDAccountant()
    else:
        raise ValueError(f"accountant must be 'rdp' or 'pld'; got {accountant!r}")
    # The RDP accountant logs a warning for each Renyi order whose series does not converge and
    # excludes that order (the bound stays valid); keep those messages out of user output.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        acc.compose(event)
        return float(acc.get_epsilon(delta))
    finally:
        absl_logger.setLevel(level)


# ----------------------------------------------------------------------------- DP-SGD
@dataclasses.dataclass(frozen=True)
class DPSGDConfig:
    """DP-SGD audit configuration (hashable: closed over by jitted functions).

    ``num_models`` models are trained, each with ``canaries_per_model`` canaries present
    independently with probability 1/2 (1 canary: the standard one-sample-per-model audit; more:
    the multi-sample heuristic). Half of the models calibrate the attack threshold, the other
    half are audited.
    """

    num_models: int = 256
    num_train: int = 256
    canaries_per_model: int = 1
    steps: int = 100
    sampling_rate: float = 0.1
    noise_multiplier: float = 1.5
    clip_norm: float = 1.0
    learning_rate: float = 2.0
    delta: float = 1e-5
    level: float = 0.95
    model_batch: int | None = None  # train models in chunks of this size (memory); None: all at once
    calibrate_per_canary: bool = True  # z-score each canary's scores against its calibration non-members

    def validate(self) -> None:
        for name in ("num_models", "num_train", "canaries_per_model", "steps"):
            _check_n(name, getattr(self, name))
        if self.num_models < 4:
            raise ValueError(f"num_models must be at least 4; got {self.num_models}")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"sampling_rate must lie in (0, 1]; got {self.sampling_rate!r}")
        for name in ("noise_multiplier", "clip_norm", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        _check_delta(self.delta)
        _check_level(self.level)
        if self.model_batch is not None:
            _check_n("model_batch", self.model_batch)


class DPSGDState(NamedTuple):
    params: Any
    opt_state: Any


def _init_params(num_features: int, num_classes: int) -> dict[str, Array]:
    # Softmax regression from a fixed (zero) start shared by all models: the only randomness is
    # DP-SGD's own (sampling and noise), as in an audit of a fixed training pipeline.
    return {"w": jnp.zeros((num_features, num_classes)), "b": jnp.zeros(num_classes)}


def _loss(params, x: Array, y: Array) -> Array:
    """Cross-entropy of ONE example under softmax regression."""
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def dpsgd_init(params, optimizer: optax.GradientTransformation) -> DPSGDState:
    return DPSGDState(params, optimizer.init(params))


def dpsgd_step(
    key: Array,
    state: DPSGDState,
    x: Array,
    y: Array,
    present: Array,
    config: DPSGDConfig,
    optimizer: optax.GradientTransformation,
) -> DPSGDState:
    """One DP-SGD step for ONE model (Abadi et al. 2016, arXiv:1607.00133).

    Poisson sampling: example i is in the batch with probability q if ``present[i]``. Per-example
    gradients by ``vmap(grad)``, each clipped to norm C; the sum gets N(0, sigma^2 C^2 I) noise
    and is divided by the expected batch size q * num_train. Every example's gradient is
    computed and masked, so shapes are static.
    """
    k_s, k_n = jax.random.split(key)
    sampled = jax.random.bernoulli(k_s, config.sampling_rate, present.shape) & present
    grads = jax.vmap(jax.grad(_loss), in_axes=(None, 0, 0))(state.params, x, y)
    norms = jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads)))
    scale = sampled * jnp.minimum(1.0, config.clip_norm / jnp.maximum(norms, 1e-12))
    summed = jax.tree.map(lambda g: jnp.tensordot(scale, g, axes=1), grads)
    leaves, treedef = jax.tree.flatten(summed)
    noise_keys = jax.random.split(k_n, len(leaves))
    noisy = [g + config.noise_multiplier * config.clip_norm * jax.random.normal(k, g.shape) for g, k in zip(leaves, noise_keys)]
    batch = config.sampling_rate * config.num_train
    grad = jax.tree.map(lambda g: g / batch, jax.tree.unflatten(treedef, noisy))
    updates, opt_state = optimizer.update(grad, state.opt_state, state.params)
    return DPSGDState(optax.apply_updates(state.params, updates), opt_state)


def train_dpsgd_models(
    key: Array, config: DPSGDConfig, x: Array, y: Array, present: Array
) -> Any:
    """Train ``present.shape[0]`` models with DP-SGD (vmap over models, scan over steps).

    ``x (n, d)``, ``y (n,)`` hold the training set followed by the canaries; ``present
    (num_models, n)`` says which examples each model may sample. Returns stacked final params.
    """
    optimizer = optax.sgd(config.learning_rate)
    params0 = _init_params(x.shape[1], 10)

    def train_one(k, pres):
        def body(state, k_t):
            return dpsgd_step(k_t, state, x, y, pres, config, optimizer), None

        state, _ = jax.lax.scan(body, dpsgd_init(params0, optimizer), jax.random.split(k, config.steps))
        return state.params

    keys = jax.random.split(key, present.shape[0])
    if config.model_batch is None or config.model_batch >= present.shape[0]:
        return jax.vmap(train_one)(keys, present)
    return jax.lax.map(lambda kp: train_one(*kp), (keys, present), batch_size=config.model_batch)


def load_digits_data(num_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to [0, 1]: a random training subset of ``num_train``
    images and the rest as a test set."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    if num_train >= len(y):
        raise ValueError(f"num_train must be below {len(y)}; got {num_train}")
    tr, te = perm[:num_train], perm[num_train:]
    return x[tr], y[tr], x[te], y[te]


def make_canaries(key: Array, num: int, num_features: int = 64) -> tuple[Array, Array]:
    """Out-of-distribution canaries: binary 8x8 patterns (each pixel on w.p. 1/2) with random
    labels; their gradients point away from the data's, so a loss test sees them clearly."""
    k1, k2 = jax.random.split(key)
    x = jax.random.bernoulli(k1, 0.5, (num, num_features)).astype(jnp.float32)
    y = jax.random.randint(k2, (num,), 0, 10)
    return x, y


class DPSGDAuditResult(NamedTuple):
    counts: AuditCounts
    threshold: float
    posterior: Any  # EpsilonPosterior
    interval: tuple[float, float]
    posterior_mean: float
    clopper_pearson: float
    accountant_rdp: float
    accountant_pld: float
    test_accuracy: float
    train_seconds: float
    config: DPSGDConfig

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "config": dataclasses.asdict(self.config),
            "counts": {"fp": int(c.fp), "n_negative": int(c.n_negative), "fn": int(c.fn), "n_positive": int(c.n_positive)},
            "threshold": self.threshold,
            "eps_posterior_mean": self.posterior_mean,
            "eps_credible_interval": list(self.interval),
            "eps_clopper_pearson_lower": self.clopper_pearson,
            "eps_accountant_rdp": self.accountant_rdp,
            "eps_accountant_pld": self.accountant_pld,
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
        }


def _select_threshold(neg: np.ndarray, pos: np.ndarray, delta: float, level: float) -> float:
    """Threshold maximising a conservative eps estimate on calibration scores: upper Jeffreys
    quantiles (at ``level``) of both rates plugged into the bound. The plain plug-in favours
    extreme thresholds with a handful of counts; the quantiles penalise them."""
    from scipy import stats

    cand = np.unique(np.concatenate([neg, pos]))
    # counts at every candidate by binary search (O(n log n); no (candidates x scores) matrix)
    fp = neg.size - np.searchsorted(np.sort(neg), cand, side="right")
    fn = np.searchsorted(np.sort(pos), cand, side="right")
    a = stats.beta.ppf(level, fp + 0.5, neg.size - fp + 0.5)
    b = stats.beta.ppf(level, fn + 0.5, pos.size - fn + 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.maximum(np.log((1 - delta - a) / b), np.log((1 - delta - b) / a))
    eps = np.where(np.isfinite(eps), eps, -np.inf)
    return float(cand[int(np.argmax(eps))])


def _standardise_per_canary(score: np.ndarray, member: np.ndarray, half: int) -> np.ndarray:
    """Per-canary z-scores against the canary's non-member scores on the calibration models
    (the offline variant of LiRA, Carlini et al. 2022, arXiv:2112.03570): canaries differ in
    their baseline loss, and pooling raw losses over canaries blurs the test. Uses only the
    calibration half, so the audited counts stay honest."""
    cal, cal_m = score[:half], member[:half]
    out = np.empty_like(score)
    for c in range(score.shape[1]):
        ref = cal[~cal_m[:, c], c]
        if ref.size < 2:
            raise ValueError("num_models too small: a canary has fewer than 2 non-member calibration models")
        out[:, c] = (score[:, c] - ref.mean()) / max(ref.std(ddof=1), 1e-12)
    return out


def dpsgd_audit(key: Array, config: DPSGDConfig = DPSGDConfig()) -> DPSGDAuditResult:
    """End-to-end DP-SGD audit on the digits data.

    1. ``num_models`` models are trained at once (vmap over models) with DP-SGD; canary c of
       model m is present independently with probability 1/2.
    2. The attack scores each canary by minus its loss under the trained model, standardised
       per canary against its non-member losses on the first half of the models
       (``calibrate_per_canary``); member iff score > threshold. The threshold is chosen on the
       first half of the models and the counts are taken on the second half, so the counts
       are honest binomials (with one canary per model; with several, the multi-sample
       heuristic treats them as such).
    3. eps is estimated by the Bayesian posterior (Jeffreys prior) and the Clopper-Pearson lower
       bound, and compared with the RDP and PLD accountants for (sigma, q, steps, delta).
    """
    from probkit.privacy.bayes import epsilon_posterior
    from probkit.privacy.frequentist import clopper_pearson_epsilon

    config.validate()
    k_data, k_can, k_mem, k_train, k_post = jax.random.split(key, 5)
    x_tr, y_tr, x_te, y_te = load_digits_data(config.num_train, seed=int(jax.random.randint(k_data, (), 0, 2**30)))
    cx, cy = make_canaries(k_can, config.canaries_per_model, x_tr.shape[1])
    x = jnp.concatenate([jnp.asarray(x_tr), cx])
    y = jnp.concatenate([jnp.asarray(y_tr), cy])
    member = jax.random.bernoulli(k_mem, 0.5, (config.num_models, config.canaries_per_model))
    present = jnp.concatenate([jnp.ones((config.num_models, config.num_train), bool), member], axis=1)

    t0 = time.perf_counter()
    params = jax.jit(train_dpsgd_models, static_argnums=1)(k_train, config, x, y, present)
    jax.block_until_ready(params)
    train_seconds = time.perf_counter() - t0

    canary_loss = jax.vmap(lambda p: jax.vmap(_loss, in_axes=(None, 0, 0))(p, cx, cy))(params)  # (M, K)
    score = np.asarray(-canary_loss, np.float64)
    mem = np.asarray(member)
    logits = jnp.einsum("nd,mdc->mnc", jnp.asarray(x_te), params["w"]) + params["b"][:, None, :]
    test_accuracy = float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y_te)[None, :]))

    half = config.num_models // 2
    if config.calibrate_per_canary:
        score = _standardise_per_canary(score, mem, half)
    cal_s, cal_m = score[:half].ravel(), mem[:half].ravel()
    aud_s, aud_m = score[half:].ravel(), mem[half:].ravel()
    if cal_m.all() or (~cal_m).all() or aud_m.all() or (~aud_m).all():
        raise ValueError("num_models too small: a half of the models has only members or only non-members")
    threshold = _select_threshold(cal_s[~cal_m], cal_s[cal_m], config.delta, config.level)
    fp = int(np.sum(aud_s[~aud_m] > threshold))
    fn = int(np.sum(aud_s[aud_m] <= threshold))
    counts = AuditCounts(fp, int((~aud_m).sum()), fn, int(aud_m.sum()))

    post = epsilon_posterior(fp, counts.n_negative, fn, counts.n_positive, config.delta, key=k_post)
    lo, hi = post.interval(config.level)
    cp = clopper_pearson_epsilon(fp, counts.n_negative, fn, counts.n_positive, config.delta, config.level)
    rdp = accountant_epsilon(config.noise_multiplier, config.sampling_rate, config.steps, config.delta, "rdp")
    pld = accountant_epsilon(config.noise_multiplier, config.sampling_rate, config.steps, config.delta, "pld")
    return DPSGDAuditResult(counts, threshold, post, (lo, hi), float(post.mean), float(cp), rdp, pld,
                            test_accuracy, train_seconds, config)
