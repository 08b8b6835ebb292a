"""Class-conditional score networks for classifier-free guidance, and a small classifier.

One noise-prediction MLP eps_theta(x, t, y) serves every class y in {0, ..., C-1} and, through a
*null* label y = C, the unconditional model (Ho & Salimans 2022, "Classifier-Free Diffusion
Guidance", arXiv 2207.12598). It is the residual MLP of :mod:`probkit.models.score_mlp` with a
learned class embedding e_y (one row of a ``(C + 1, time_dim)`` table, zero at initialisation:
the untrained model ignores the label) added to the first layer of the noise-level MLP,

    temb = silu(W2 silu(W1 gamma(c_t) + b1 + e_y) + b2),

implemented by shifting ``b1`` by e_y and calling
:func:`~probkit.models.score_mlp.score_mlp_apply`, so the two networks cannot drift apart.
Training is denoising score matching with *condition dropout*: each label is replaced by the
null label with probability ``p_uncond``, so one network learns grad log p_t(x | y) and
grad log p_t(x); the score is s_theta(x, t, y) = -eps_theta(x, t, y) / sigma_t.

The MLP classifier evaluates guided samples. Both networks, trained on the train split of
:func:`load_digits_split` by ``benchmarks/train_guidance.py``, ship with probkit.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from probkit import _checks, _io
from probkit.models.score_mlp import (Params, ScoreMLPConfig, dense_init, init_score_mlp, param_template,
                                      score_mlp_apply)
from probkit.models.serialization import load_pretrained_file, parse_config_process, pretrained_path, process_to_dict
from probkit.models.training import (StaticArg, TrainResult, check_data, check_hyper, data_scale, dsm_train_init,
                                     ema_train_step, fit, noised_batch)

Array = jax.Array

__all__ = [
    "ConditionalScoreConfig", "init_conditional_score_mlp", "conditional_apply", "conditional_score_fn",
    "check_label", "conditional_dsm_loss", "ConditionalTrainResult", "train_conditional_score_model",
    "save_conditional_score_model", "load_conditional_score_model", "ClassifierConfig", "init_classifier",
    "classifier_logits", "train_classifier", "save_classifier", "load_classifier", "read_model_metadata",
    "load_digits_split", "pretrained_conditional_digits_path", "load_pretrained_conditional_digits",
    "pretrained_digits_classifier_path", "load_pretrained_digits_classifier",
]

COND_FORMAT = "probkit.conditional_score_mlp"
CLF_FORMAT = "probkit.mlp_classifier"
FORMAT_VERSION = 1
_PRETRAINED_COND = "digits_cond_vp"
_PRETRAINED_CLF = "digits_classifier"


# ------------------------------------------------------------------------ Conditional score network
@dataclasses.dataclass(frozen=True)
class ConditionalScoreConfig(_io.JsonConfig):
    """Static description of a class-conditional score MLP (hashable).

    Attributes:
      net: the :class:`~probkit.models.nets.ScoreMLPConfig` of the underlying network.
      num_classes: C; labels are ``0..C-1`` and the null (unconditional) label is ``C``.
    """

    net: ScoreMLPConfig
    num_classes: int
    _from_json = {"net": ScoreMLPConfig.from_dict}

    @property
    def null_label(self) -> int:
        return self.num_classes

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.net.event_shape

    def _validate(self) -> None:
        _checks.positive_int("num_classes", self.num_classes)


def init_conditional_score_mlp(
    key: Array, dim: int | tuple[int, ...], num_classes: int, hidden: int = 256, depth: int = 3, **net_kwargs: Any
) -> tuple[Params, ConditionalScoreConfig]:
    """Initialise a class-conditional noise-prediction MLP.

    ``net_kwargs`` go to :func:`probkit.models.nets.init_score_mlp` (``data_mean``,
    ``data_std``, ``time_dim``, ...). Returns ``(params, config)`` with
    ``params = {"net": <score MLP params>, "class_emb": (num_classes + 1, time_dim)}``; the
    embedding starts at zero, so the untrained network equals the unconditional one.
    """
    _checks.positive_int("num_classes", num_classes)
    net_params, net_cfg = init_score_mlp(key, dim, hidden, depth, **net_kwargs)
    params = {"net": net_params, "class_emb": jnp.zeros((int(num_classes) + 1, net_cfg.time_dim), jnp.float32)}
    return params, ConditionalScoreConfig(net_cfg, int(num_classes))


def check_label(label: Any, num_classes: int, name: str = "label", allow_null: bool = True) -> Any:
    """Validate a class label at the Python boundary and return it as an int32 array.

    ``None`` means the null label ``num_classes`` (the unconditional model) if ``allow_null``.
    Concrete labels must be integers in ``0..num_classes-1`` (or the null label); traced labels
    pass through unchecked (an out-of-range traced label makes the network output NaN, which
    the samplers report).
    """
    if label is None:
        if not allow_null:
            raise ValueError(f"`{name}` must be a class in 0..{num_classes - 1}, got None")
        return jnp.asarray(num_classes, jnp.int32)
    if isinstance(label, jax.core.Tracer):
        return label.astype(jnp.int32)
    arr = np.asarray(label)
    hi = num_classes if allow_null else num_classes - 1
    if isinstance(label, bool) or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ValueError(f"`{name}` must be an integer class label in 0..{hi}, got {label!r}")
    if np.any(arr < 0) or np.any(arr > hi):
        null = f" ({num_classes} = unconditional)" if allow_null else ""
        raise ValueError(f"unknown class `{name}` {label!r}: labels are 0..{hi}{null}")
    return jnp.asarray(arr, jnp.int32)


def conditional_apply(
    params: Params, config: ConditionalScoreConfig, x: ArrayLike, t: ArrayLike, label: ArrayLike, process
) -> Array:
    """Noise prediction ``eps_theta(x, t, label)`` for ONE particle; ``label = num_classes`` is
    the null (unconditional) label."""
    label = jnp.asarray(label, jnp.int32)
    valid = (label >= 0) & (label <= config.num_classes)  # an unknown (traced) label gives NaN
    emb = jnp.where(valid, params["class_emb"][jnp.clip(label, 0, config.num_classes)], jnp.nan)
    time = params["net"]["time"]
    net = {**params["net"], "time": {**time, "b1": time["b1"] + emb}}
    return score_mlp_apply(net, config.net, x, t, process)


@functools.lru_cache(maxsize=None)
def _score_apply(config: ConditionalScoreConfig, process) -> Callable[..., Array]:
    """One function object per (config, process), so Partials built from it share a jit cache."""

    def score(params: Params, label: Array, x: Array, t: Array) -> Array:
        return -conditional_apply(params, config, x, t, label, process) / process.sigma(t)

    return score


def conditional_score_fn(params: Params, config: ConditionalScoreConfig, process, label: Any = None):
    """``score_fn(x, t) = -eps_theta(x, t, label) / sigma_t`` for ONE particle.

    ``label=None`` gives the unconditional score. Returned as a
    ``jax.tree_util.Partial(apply, params, label)``: ``params`` and ``label`` are array leaves,
    traced when the score function is passed through ``jax.jit``, so a sampler compiled once
    serves every label and every set of weights of the same shapes. Raises ``ValueError``
    naming ``label`` for an unknown class.
    """
    if not isinstance(config, ConditionalScoreConfig):
        raise ValueError(f"`config` must be a ConditionalScoreConfig, got {type(config).__name__}")
    lab = check_label(label, config.num_classes, "label")
    return jax.tree_util.Partial(_score_apply(config, process), params, lab)


# ------------------------------------------------------------------ Training with condition dropout
def conditional_dsm_loss(
    params: Params, config: ConditionalScoreConfig, process, key: Array, x0: Array, labels: Array,
    t_min: float = 1e-3, p_uncond: float = 0.1,
) -> Array:
    """DSM loss ``mean_i ||eps_theta(x_t^i, t_i, y_i) - eps_i||^2 / D`` with each label replaced
    by the null label with probability ``p_uncond`` (condition dropout)."""
    k_noise, k_drop = jax.random.split(key)
    t, eps, xt = noised_batch(process, k_noise, x0, t_min)
    y = jnp.where(jax.random.bernoulli(k_drop, p_uncond, (x0.shape[0],)), config.null_label, labels)
    pred = jax.vmap(lambda x, s, lab: conditional_apply(params, config, x, s, lab, process))(xt, t, y)
    return jnp.mean((pred - eps) ** 2)


ConditionalTrainResult = TrainResult  # ``params`` (EMA), ``config``, per-step ``losses`` and the final ``state``


def _conditional_step(data: tuple[Array, Array], config: ConditionalScoreConfig, process: StaticArg, hyper,
                      p_uncond: float):
    def loss(params: Params, key: Array, batch: tuple[Array, Array]) -> Array:
        return conditional_dsm_loss(params, config, process.obj, key, *batch, hyper.t_min, p_uncond)

    return ema_train_step(loss, hyper.optimizer(), data, hyper.batch_size, hyper.ema_decay)


def train_conditional_score_model(
    key: Array,
    data: ArrayLike,
    labels: ArrayLike,
    process,
    num_steps: int,
    batch_size: int = 256,
    *,
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    hidden: int = 256,
    depth: int = 3,
    learning_rate: float = 2e-3,
    ema_decay: float = 0.999,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    t_min: float | None = None,
    chunk_size: int = 500,
    callback: Callable[[int, np.ndarray], None] | None = None,
    **net_kwargs: Any,
) -> TrainResult:
    """Train a class-conditional noise-prediction MLP by DSM with condition dropout.

    ``data``: ``(n, *event_shape)``; ``labels``: ``(n,)`` ints in ``0..num_classes-1``
    (``num_classes`` defaults to ``max(labels) + 1``). The training loop, optimiser and
    ``data_mean`` / ``data_std`` defaults are those of :func:`probkit.models.nets.train_score_model`;
    ``callback(steps_done, chunk_losses)`` runs after each chunk. Returns the EMA parameters.
    """
    arr = check_data(data)
    lab = np.asarray(labels)
    if lab.shape != (arr.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"`labels` must be integers of shape ({arr.shape[0]},), got {lab.dtype} {lab.shape}")
    num_classes = _checks.positive_int("num_classes", int(lab.max()) + 1 if num_classes is None else num_classes)
    if lab.min() < 0 or lab.max() >= num_classes:
        raise ValueError(f"`labels` must lie in 0..{num_classes - 1}, got range {lab.min()}..{lab.max()}")
    hyper = check_hyper(process, num_steps, batch_size, learning_rate, None, weight_decay, grad_clip, ema_decay, t_min)
    if not 0.0 < p_uncond < 1.0:
        raise ValueError(f"`p_uncond` must lie in (0, 1), got {p_uncond!r}")
    k_init, k_train = jax.random.split(key)
    params, config = init_conditional_score_mlp(k_init, arr.shape[1:], num_classes, hidden, depth,
                                                **data_scale(arr, net_kwargs))
    data_j = (jnp.asarray(arr, jnp.float32), jnp.asarray(lab, jnp.int32))
    state, losses = fit(dsm_train_init(params, hyper.optimizer()), jax.random.split(k_train, hyper.num_steps), data_j,
                        _conditional_step, (config, StaticArg(process), hyper, float(p_uncond)),
                        _checks.positive_int("chunk_size", chunk_size),
                        callback=None if callback is None else lambda done, chunk, _: callback(done, chunk))
    return TrainResult(state.ema_params, config, jnp.asarray(losses), state)


# --------------------------------------------------------------------------------------- Classifier
@dataclasses.dataclass(frozen=True)
class ClassifierConfig(_io.JsonConfig):
    """An MLP classifier ``dim -> hidden (x depth, SiLU) -> num_classes``."""

    dim: int
    num_classes: int
    hidden: int = 128
    depth: int = 2

    def _validate(self) -> None:
        for k, v in self.to_dict().items():
            _checks.positive_int(k, v)


def init_classifier(key: Array, dim: int, num_classes: int, hidden: int = 128, depth: int = 2) -> tuple[Params, ClassifierConfig]:
    """LeCun-normal MLP weights; returns ``(params, config)``."""
    cfg = ClassifierConfig(*(_checks.positive_int(k, v) for k, v in
                             (("dim", dim), ("num_classes", num_classes), ("hidden", hidden), ("depth", depth))))
    sizes = [cfg.dim] + [cfg.hidden] * cfg.depth + [cfg.num_classes]
    keys = jax.random.split(key, len(sizes) - 1)
    return {"layers": [dense_init(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]}, cfg


def classifier_logits(params: Params, config: ClassifierConfig, x: ArrayLike) -> Array:
    """Logits ``(..., num_classes)`` for inputs ``(..., dim)``."""
    h = jnp.asarray(x, jnp.float32)
    if h.shape[-1] != config.dim:
        raise ValueError(f"`x` must have trailing dimension {config.dim}, got shape {h.shape}")
    layers = params["layers"]
    for layer in layers[:-1]:
        h = jax.nn.silu(h @ layer["w"] + layer["b"])
    return h @ layers[-1]["w"] + layers[-1]["b"]


def train_classifier(
    key: Array, data: ArrayLike, labels: ArrayLike, num_classes: int, num_steps: int = 4000, batch_size: int = 128,
    *, hidden: int = 128, depth: int = 2, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
    noise_std: float = 0.1, label_smoothing: float = 0.05,
) -> tuple[Params, ClassifierConfig, Array]:
    """Cross-entropy training (AdamW, cosine decay) with Gaussian input noise ``noise_std`` as
    augmentation. Returns ``(params, config, losses)``."""
    arr = check_data(data).reshape(np.asarray(data).shape[0], -1)
    lab = np.asarray(labels)
    if lab.shape != (arr.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"`labels` must be integers of shape ({arr.shape[0]},)")
    k_init, k_train = jax.random.split(key)
    params, cfg = init_classifier(k_init, arr.shape[1], num_classes, hidden, depth)
    opt = optax.adamw(optax.cosine_decay_schedule(learning_rate, num_steps, 0.01), weight_decay=weight_decay)

    def loss_fn(p, k_noise, batch):
        x, y = batch
        target = optax.smooth_labels(jax.nn.one_hot(y, num_classes), label_smoothing)
        logits = classifier_logits(p, cfg, x + noise_std * jax.random.normal(k_noise, x.shape))
        return jnp.mean(optax.softmax_cross_entropy(logits, target))

    # the minibatch step of the score networks' trainer; ema_decay=0: no weight averaging
    step = ema_train_step(loss_fn, opt, (jnp.asarray(arr, jnp.float32), jnp.asarray(lab, jnp.int32)), batch_size, 0.0)
    state, losses = jax.jit(lambda s, ks: jax.lax.scan(step, s, ks))(dsm_train_init(params, opt),
                                                                    jax.random.split(k_train, num_steps))
    return state.params, cfg, losses


# ------------------------------------------- Save / load (npz of named arrays + json; never pickle)
def _cond_template(config: ConditionalScoreConfig) -> Params:
    emb = jax.ShapeDtypeStruct((config.num_classes + 1, config.net.time_dim), jnp.float32)
    return {"net": param_template(config.net), "class_emb": emb}


def save_conditional_score_model(
    path: str | os.PathLike, params: Params, config: ConditionalScoreConfig, process, *, dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Write ``<path>.npz`` and ``<path>.json`` (format ``probkit.conditional_score_mlp``; the
    pickle-free files of :func:`probkit.models.nets.save_score_model`); ``dtype="float16"``
    halves the files. Returns the two file names."""
    if not isinstance(config, ConditionalScoreConfig):
        raise ValueError(f"`config` must be a ConditionalScoreConfig, got {type(config).__name__}")
    meta = {"config": config.to_dict(), "process": process_to_dict(process), "metadata": metadata or {}}
    return _io.save_params(path, COND_FORMAT, FORMAT_VERSION, params, _cond_template(config), meta, dtype)


def load_conditional_score_model(path: str | os.PathLike) -> tuple[Params, ConditionalScoreConfig, Any]:
    """Read a model written by :func:`save_conditional_score_model`: ``(params, config, process)``.

    Never unpickles; raises ValueError on a missing or corrupt file, wrong format or version,
    malformed config, missing/unexpected arrays, wrong shapes, non-float or non-finite values.
    """
    meta = _io.read_json(path, COND_FORMAT, FORMAT_VERSION)
    config, process = parse_config_process(path, meta, ConditionalScoreConfig)
    return _io.load_params(path, meta, _cond_template(config)), config, process


def _clf_template(config: ClassifierConfig) -> Params:
    return jax.eval_shape(lambda: init_classifier(jax.random.PRNGKey(0), **config.to_dict())[0])


def save_classifier(
    path: str | os.PathLike, params: Params, config: ClassifierConfig, *, dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Write a classifier as ``<path>.npz`` + ``<path>.json`` (format ``probkit.mlp_classifier``)."""
    if not isinstance(config, ClassifierConfig):
        raise ValueError(f"`config` must be a ClassifierConfig, got {type(config).__name__}")
    meta = {"config": config.to_dict(), "metadata": metadata or {}}
    return _io.save_params(path, CLF_FORMAT, FORMAT_VERSION, params, _clf_template(config), meta, dtype)


def load_classifier(path: str | os.PathLike) -> tuple[Params, ClassifierConfig]:
    """Read a classifier written by :func:`save_classifier`: ``(params, config)``."""
    meta = _io.read_json(path, CLF_FORMAT, FORMAT_VERSION)
    config = parse_config_process(path, meta, ClassifierConfig, with_process=False)
    return _io.load_params(path, meta, _clf_template(config)), config


def read_model_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` object stored with a conditional score model or a classifier."""
    return _io.read_json(path, (COND_FORMAT, CLF_FORMAT), FORMAT_VERSION).get("metadata", {})


# --------------------------------------------------------------------------------------- The digits
def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """A fixed stratified split of scikit-learn's 8x8 digits (pixels in [-1, 1], flattened).

    Within each class the images are permuted by ``numpy.random.default_rng(seed)`` and the
    first ``round(test_fraction * n_c)`` go to the test set. Returns
    ``(x_train, y_train, x_test, y_test)`` (float32 ``(n, 64)``, int32 ``(n,)``); the default
    gives 1347 training and 450 test images.
    """
    from probkit.models.digits import load_digits_data

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}")
    x, y = load_digits_data(return_labels=True)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    return x[~test], y[~test], x[test], y[test]


def pretrained_conditional_digits_path() -> str:
    """Base path of the shipped ``digits_cond_vp.{npz,json}``."""
    return pretrained_path(_PRETRAINED_COND)


def pretrained_digits_classifier_path() -> str:
    """Base path of the shipped ``digits_classifier.{npz,json}``."""
    return pretrained_path(_PRETRAINED_CLF)


def load_pretrained_conditional_digits() -> tuple[Params, ConditionalScoreConfig, Any]:
    """``(params, config, process)`` of the class-conditional digits model shipped with probkit
    (10 classes plus the null label 10; trained on the train split of :func:`load_digits_split`
    by ``benchmarks/train_guidance.py``; recipe in its JSON side-car's ``metadata``)."""
    return load_pretrained_file(_PRETRAINED_COND, load_conditional_score_model, "conditional digits model",
                                "benchmarks/train_guidance.py")


def load_pretrained_digits_classifier() -> tuple[Params, ClassifierConfig]:
    """``(params, config)`` of the digit classifier shipped with probkit (trained on the train
    split of :func:`load_digits_split`; test accuracy in its ``metadata``)."""
    return load_pretrained_file(_PRETRAINED_CLF, load_classifier, "digits classifier", "benchmarks/train_guidance.py")
