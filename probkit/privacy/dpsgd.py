"""Auditing DP-SGD end to end, beside the accountant.

:func:`dpsgd_audit` trains many small softmax-regression models at once (vmap over models) on
scikit-learn's 8x8 digits with DP-SGD (Abadi et al. 2016, arXiv:1607.00133: Poisson sampling,
per-example clipping, Gaussian noise), each with out-of-distribution canaries present with
probability 1/2; a loss-threshold test on the canaries gives audit counts, from which eps is
estimated (Zanella-Béguelin et al. 2023, "Bayesian Estimation of Differential Privacy", ICML,
arXiv:2206.05199) and set beside the RDP (Mironov 2017, arXiv:1702.07476) and PLD accountants of
``dp_accounting`` for the same noise, rate and steps. Clipping, summing and noising are optax's
DP aggregate (:func:`dpsgd_optimizer`).
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

from probkit.privacy._checks import check_delta, check_level, check_nonnegative, check_positive_int
from probkit.privacy.counts import AuditCounts
from probkit.privacy.scores import audit_from_scores

__all__ = [
    "accountant_epsilon", "DPSGDConfig", "DPSGDState", "dpsgd_optimizer", "dpsgd_init", "dpsgd_step",
    "train_dpsgd_models", "load_digits_data", "make_canaries", "DPSGDAuditResult", "dpsgd_audit",
]

Array = jax.Array


# ----------------------------------------------------------------------------- accountant
def accountant_epsilon(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Theoretical eps of DP-SGD (Poisson-subsampled Gaussian, composed ``steps`` times) from
    ``dp_accounting``: ``"rdp"`` (Mironov 2017) or ``"pld"`` (privacy-loss distributions, tighter)."""
    from dp_accounting import dp_event, pld, rdp

    _check_mechanism(noise_multiplier, sampling_rate, steps, delta)
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sampling_rate, dp_event.GaussianDpEvent(noise_multiplier)), steps
    )
    if accountant not in ("rdp", "pld"):
        raise ValueError(f"accountant must be 'rdp' or 'pld'; got {accountant!r}")
    acc = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant()
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


def _check_mechanism(noise_multiplier, sampling_rate, steps, delta) -> None:
    """The settings of the subsampled Gaussian mechanism (ValueError naming the argument)."""
    if delta == 0:
        raise ValueError("delta must be positive: the (subsampled) Gaussian mechanism is not pure DP "
                         "(its eps at delta = 0 is infinite)")
    check_delta(delta, allow_zero=False)
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be positive; got {noise_multiplier!r}")
    if not 0 < sampling_rate <= 1:
        raise ValueError(f"sampling_rate must lie in (0, 1]; got {sampling_rate!r}")
    check_positive_int("steps", steps)


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
        _check_mechanism(self.noise_multiplier, self.sampling_rate, self.steps, self.delta)
        for name in ("num_models", "num_train", "canaries_per_model"):
            check_positive_int(name, getattr(self, name))
        if self.num_models < 4:
            raise ValueError(f"num_models must be at least 4; got {self.num_models}")
        for name in ("clip_norm", "learning_rate"):
            check_nonnegative(name, getattr(self, name), strict=True)
        check_level(self.level)
        if self.model_batch is not None:
            check_positive_int("model_batch", self.model_batch)


class DPSGDState(NamedTuple):
    params: Any
    opt_state: Any


def _loss(params, x: Array, y: Array) -> Array:
    """Cross-entropy of ONE example under softmax regression."""
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def dpsgd_optimizer(config: DPSGDConfig, key: Array, num_rows: int) -> optax.GradientTransformation:
    """DP-SGD as an optax chain taking per-example gradients (leading axis: ``num_rows`` rows).

    ``optax.contrib.differentially_private_aggregate`` clips each row to norm C
    (``optax.per_example_global_norm_clip``), sums, adds N(0, sigma^2 C^2 I) noise from the
    ``key`` it carries in its state, and divides by ``num_rows``; ``optax.scale(num_rows / (q n))``
    turns that into the division by the expected Poisson batch size ``q n`` of Abadi et al. (2016),
    and ``optax.sgd`` steps. Rows not sampled are zero gradients (norm 0: unchanged by clipping).
    """
    batch = config.sampling_rate * config.num_train
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):  # raw uint32 key (PRNGKey): wrap it
        key = jax.random.wrap_key_data(key)
    return optax.chain(
        optax.contrib.differentially_private_aggregate(config.clip_norm, config.noise_multiplier, key=key),
        optax.scale(num_rows / batch),
        optax.sgd(config.learning_rate),
    )


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

    Poisson sampling with ``key``: example i is in the batch with probability q if
    ``present[i]``. Per-example gradients by ``vmap(grad)``, masked to the batch, go through
    ``optimizer`` (:func:`dpsgd_optimizer`: clip to norm C, sum, noise, divide by q n, SGD).
    Every example's gradient is computed and masked, so shapes are static.
    """
    sampled = jax.random.bernoulli(key, config.sampling_rate, present.shape) & present
    grads = jax.vmap(jax.grad(_loss), in_axes=(None, 0, 0))(state.params, x, y)
    grads = jax.tree.map(lambda g: g * sampled.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return DPSGDState(optax.apply_updates(state.params, updates), opt_state)


def train_dpsgd_models(key: Array, config: DPSGDConfig, x: Array, y: Array, present: Array) -> Any:
    """Train ``present.shape[0]`` models with DP-SGD (vmap over models, scan over steps).

    ``x (n, d)``, ``y (n,)`` hold the training set followed by the canaries; ``present
    (num_models, n)`` says which examples each model may sample. Each model's key splits into
    its Poisson-sampling keys and the noise key of its optax DP aggregate. Returns stacked
    final params.
    """
    # Softmax regression from a fixed (zero) start shared by all models: the only randomness is
    # DP-SGD's own (sampling and noise), as in an audit of a fixed training pipeline.
    params0 = {"w": jnp.zeros((x.shape[1], 10)), "b": jnp.zeros(10)}

    def train_one(k, pres):
        k_sample, k_noise = jax.random.split(k)
        optimizer = dpsgd_optimizer(config, k_noise, x.shape[0])

        def body(state, k_t):
            return dpsgd_step(k_t, state, x, y, pres, config, optimizer), None

        state, _ = jax.lax.scan(body, dpsgd_init(params0, optimizer), jax.random.split(k_sample, config.steps))
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
        return {
            "config": dataclasses.asdict(self.config),
            "counts": self.counts.to_dict(),
            "threshold": self.threshold,
            "eps_posterior_mean": self.posterior_mean,
            "eps_credible_interval": list(self.interval),
            "eps_clopper_pearson_lower": self.clopper_pearson,
            "eps_accountant_rdp": self.accountant_rdp,
            "eps_accountant_pld": self.accountant_pld,
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
        }


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
       first half of the models and the counts are taken on the second half
       (:func:`~probkit.privacy.audit_from_scores` with that split), so the counts are honest
       binomials (with one canary per model; with several, the multi-sample heuristic treats
       them as such).
    3. eps is estimated by the Bayesian posterior (Jeffreys prior) and the Clopper-Pearson lower
       bound, and compared with the RDP and PLD accountants for (sigma, q, steps, delta).
    """
    config.validate()
    k_data, k_can, k_mem, k_train, k_post = jax.random.split(key, 5)
    x_tr, y_tr, x_te, y_te = load_digits_data(config.num_train, seed=int(jax.random.randint(k_data, (), 0, 2**30)))
    cx, cy = make_canaries(k_can, config.canaries_per_model, x_tr.shape[1])
    x = jnp.concatenate([jnp.asarray(x_tr), cx])
    y = jnp.concatenate([jnp.asarray(y_tr), cy])
    member = jax.random.bernoulli(k_mem, 0.5, (config.num_models, config.canaries_per_model))
    present = jnp.concatenate([jnp.ones((config.num_models, config.num_train), bool), member], axis=1)

    t0 = time.perf_counter()
    params = jax.block_until_ready(jax.jit(train_dpsgd_models, static_argnums=1)(k_train, config, x, y, present))
    train_seconds = time.perf_counter() - t0

    canary_loss = jax.vmap(lambda p: jax.vmap(_loss, in_axes=(None, 0, 0))(p, cx, cy))(params)  # (M, K)
    score = np.asarray(-canary_loss, np.float64)
    mem = np.asarray(member)
    logits = jnp.einsum("nd,mdc->mnc", jnp.asarray(x_te), params["w"]) + params["b"][:, None, :]
    test_accuracy = float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y_te)[None, :]))

    half = config.num_models // 2
    if config.calibrate_per_canary:
        score = _standardise_per_canary(score, mem, half)
    cal_m, aud_m = mem[:half], mem[half:]
    if cal_m.all() or (~cal_m).all() or aud_m.all() or (~aud_m).all():
        raise ValueError("num_models too small: a half of the models has only members or only non-members")
    calibration = np.zeros(score.shape, bool)
    calibration[:half] = True
    audit = audit_from_scores(score.ravel(), mem.ravel(), deltas=[config.delta], level=config.level,
                              split=calibration.ravel(), thresholds=np.unique(score[:half]), gdp=False, key=k_post)
    post = audit.posteriors[0]
    rdp = accountant_epsilon(config.noise_multiplier, config.sampling_rate, config.steps, config.delta, "rdp")
    pld = accountant_epsilon(config.noise_multiplier, config.sampling_rate, config.steps, config.delta, "pld")
    return DPSGDAuditResult(audit.counts[0], float(audit.thresholds[0]), post, post.interval(config.level),
                            float(post.mean), float(audit.cp_lower[0]), rdp, pld, test_accuracy, train_seconds, config)
