"""Score networks in pure JAX, denoising score matching with optax, and pickle-free save/load.

The network is a residual MLP that predicts the noise ``eps_theta(x, t)`` of
``x_t = alpha_t x_0 + sigma_t eps`` (Ho et al. 2020, "Denoising Diffusion Probabilistic
Models", arXiv 2006.11239); by Tweedie's formula the score is

    grad log p_t(x) = -E[eps | x_t = x] / sigma_t  ~=  s_theta(x, t) = -eps_theta(x, t) / sigma_t.

Training minimises the denoising score matching loss (Vincent 2011; Song et al. 2021,
arXiv 2011.13456) in its noise-prediction form

    L(theta) = E_{t, x_0, eps} || eps_theta(alpha_t x_0 + sigma_t eps, t) - eps ||^2 / D,

i.e. score matching with weighting lambda(t) = sigma_t^2 (``D`` = number of coordinates, so
the untrained network, which outputs zero, has loss 1). Times are uniform on ``[t_min, 1]``
(no importance weighting), drawn with the stratified ("low-discrepancy") sampler of Kingma
et al. 2021 (VDM, arXiv 2107.00630): one uniform offset per batch,
``t_i = t_min + (1 - t_min) ((u + i/B) mod 1)`` — same marginal, lower-variance loss.

Architecture (parameters are a plain dict pytree of arrays; no flax/equinox):

* input preconditioning ``c_in(t) (x - alpha_t mu)`` with
  ``c_in = 1/sqrt(alpha_t^2 s_data^2 + sigma_t^2)`` (Karras et al. 2022, EDM, arXiv
  2206.00364), so the input has about unit scale at every t; ``mu`` is a learned
  per-coordinate centre initialised at the data mean;
* a Gaussian skip connection: the output is
  ``eps_theta = sigma_t c_in^2 (x - alpha_t mu) + F(c_in (x - alpha_t mu), t)``, where the
  first term is the exact noise prediction for data ``N(mu, s_data^2 I)``. The network only
  learns the non-Gaussian residual, and far from the data (where an MLP with layer norms
  saturates) the score still pulls inwards linearly; without it, probability-flow samplers
  (DDIM, Heun, DPM-Solver) send prior draws from the tails to |x| ~ 1/alpha_1;
* a noise-level embedding: sinusoidal features ``[sin(f_k c), cos(f_k c), c]`` at geometric
  frequencies ``f_k`` of ``c = log-SNR(t) / 4`` (default) or ``c = 8 t - 4``, then a 2-layer
  SiLU MLP;
* ``depth`` pre-norm residual blocks ``h += W2 silu(W1 silu(LN(h)) + b1 + U temb) + b2``,
  stored stacked along a leading axis and applied with ``lax.scan`` (fast compilation);
* a zero-initialised output layer, so training starts from ``eps_theta = 0``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

Array = jax.Array
Params = dict[str, Any]
ScoreFn = Callable[[Array, Array], Array]

__all__ = [
    "ScoreMLPConfig",
    "init_score_mlp",
    "score_mlp_apply",
    "make_eps_fn",
    "make_score_fn",
    "count_params",
    "dsm_loss",
    "make_optimizer",
    "TrainState",
    "TrainResult",
    "dsm_train_init",
    "make_dsm_train_step",
    "train_score_model",
    "save_score_model",
    "load_score_model",
    "read_metadata",
    "stratified_times",
    "FORMAT_VERSION",
]

FORMAT_NAME = "probkit.score_mlp"
FORMAT_VERSION = 1
TIME_INPUTS = ("log_snr", "t")
_PROCESS_NAMES = ("VP", "VPCosine", "VE", "EDM")


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScoreMLPConfig:
    """Static description of a score MLP (hashable; JSON-serialisable via ``to_dict``).

    Attributes:
      event_shape: shape of one particle; the network acts on its ``dim`` flattened coordinates.
      hidden: width of the residual stream.
      depth: number of residual blocks.
      embed_dim: number of sinusoidal features of the noise level (half sin, half cos).
      time_dim: width of the noise-level MLP.
      time_input: ``"log_snr"`` (embed log-SNR(t)/4) or ``"t"`` (embed 8t - 4).
      data_std: data scale used by the input preconditioning ``c_in`` and the Gaussian skip;
        ``None`` disables both (and the centring).
      gaussian_skip: add the exact noise prediction of ``N(mu, data_std^2 I)`` to the output.
      min_freq, max_freq: range of the geometric embedding frequencies.
    """

    event_shape: tuple[int, ...]
    hidden: int = 256
    depth: int = 3
    embed_dim: int = 64
    time_dim: int = 128
    time_input: str = "log_snr"
    data_std: float | None = 1.0
    min_freq: float = 0.1
    max_freq: float = 30.0
    gaussian_skip: bool = True

    @property
    def dim(self) -> int:
        return int(math.prod(self.event_shape))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["event_shape"] = list(self.event_shape)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "ScoreMLPConfig":
        if not isinstance(d, dict):
            raise ValueError(f"`config` must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"`config` has unknown fields {sorted(unknown)}")
        if not isinstance(d.get("event_shape"), (list, tuple)):
            raise ValueError("`config` lacks a list field 'event_shape'")
        d = dict(d)
        d["event_shape"] = tuple(int(s) for s in d["event_shape"])
        try:
            cfg = cls(**d)
        except TypeError as e:
            raise ValueError(f"bad `config`: {e}") from None
        _validate_config(cfg)
        return cfg


def _check_pos_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")


def _check_pos_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")


def _validate_config(cfg: ScoreMLPConfig) -> None:
    if len(cfg.event_shape) == 0 or any(int(s) < 1 for s in cfg.event_shape):
        raise ValueError(f"`dim` / `event_shape` must be positive ints, got {cfg.event_shape}")
    for name in ("hidden", "depth", "time_dim", "embed_dim"):
        _check_pos_int(name, getattr(cfg, name))
    if cfg.embed_dim % 2:
        raise ValueError(f"`embed_dim` must be even (sin and cos features), got {cfg.embed_dim}")
    if cfg.time_input not in TIME_INPUTS:
        raise ValueError(f"`time_input` must be one of {TIME_INPUTS}, got {cfg.time_input!r}")
    if cfg.data_std is not None:
        _check_pos_float("data_std", cfg.data_std)
    _check_pos_float("min_freq", cfg.min_freq)
    _check_pos_float("max_freq", cfg.max_freq)
    if not isinstance(cfg.gaussian_skip, bool):
        raise ValueError(f"`gaussian_skip` must be a bool, got {cfg.gaussian_skip!r}")
    if cfg.min_freq >= cfg.max_freq:
        raise ValueError(f"need `min_freq` < `max_freq`, got {cfg.min_freq}, {cfg.max_freq}")


def _lecun(key: Array, fan_in: int, fan_out: int, scale: float = 1.0, lead: tuple[int, ...] = ()) -> Array:
    """LeCun-normal weights ``N(0, scale / fan_in)``."""
    return jax.random.normal(key, (*lead, fan_in, fan_out)) * math.sqrt(scale / fan_in)


def _make_config(dim: int | tuple[int, ...], hidden: int, depth: int, **kw: Any) -> ScoreMLPConfig:
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
        event_shape: tuple[int, ...] = (int(dim),)
    else:
        try:
            event_shape = tuple(int(s) for s in dim)
        except TypeError:
            raise ValueError(f"`dim` must be an int or a tuple of ints, got {dim!r}") from None
    cfg = ScoreMLPConfig(event_shape, hidden, depth, **kw)
    _validate_config(cfg)
    return cfg


def _init_params(key: Array, cfg: ScoreMLPConfig, center: Array | None = None) -> Params:
    d, h, td, e, n = cfg.dim, cfg.hidden, cfg.time_dim, cfg.embed_dim, cfg.depth
    ks = jax.random.split(key, 6)
    return {
        "center": jnp.zeros(d) if center is None else center,
        "in": {"w": _lecun(ks[0], d, h), "b": jnp.zeros(h)},
        "time": {"w1": _lecun(ks[1], e + 1, td), "b1": jnp.zeros(td), "w2": _lecun(ks[2], td, td), "b2": jnp.zeros(td)},
        "blocks": {
            "ln_scale": jnp.ones((n, h)), "ln_bias": jnp.zeros((n, h)),
            "w1": _lecun(ks[3], h, h, lead=(n,)), "b1": jnp.zeros((n, h)),
            "wt": _lecun(ks[4], td, h, lead=(n,)),
            # Small second layer: every residual branch starts close to zero.
            "w2": _lecun(ks[5], h, h, scale=0.1, lead=(n,)), "b2": jnp.zeros((n, h)),
        },
        # Zero output layer: the untrained model predicts eps = 0 (score 0, DSM loss 1).
        "out": {"ln_scale": jnp.ones(h), "ln_bias": jnp.zeros(h), "w": jnp.zeros((h, d)), "b": jnp.zeros(d)},
    }


def init_score_mlp(
    key: Array,
    dim: int | tuple[int, ...],
    hidden: int = 256,
    depth: int = 3,
    *,
    embed_dim: int = 64,
    time_dim: int = 128,
    time_input: str = "log_snr",
    data_std: float | None = 1.0,
    min_freq: float = 0.1,
    max_freq: float = 30.0,
    gaussian_skip: bool = True,
    data_mean: ArrayLike = 0.0,
) -> tuple[Params, ScoreMLPConfig]:
    """Initialise a noise-prediction MLP for particles of shape ``dim`` (an int or event shape).

    ``data_mean`` (scalar or event-shaped) initialises the learned centre ``mu``; with the
    zero output layer the untrained network is the exact noise predictor of
    ``N(data_mean, data_std^2 I)`` (of ``0`` if ``gaussian_skip=False`` or ``data_std=None``).
    Returns ``(params, config)``: ``params`` a dict pytree of float32 arrays, ``config`` a
    hashable :class:`ScoreMLPConfig` (pass it as a static/closed-over value).
    """
    cfg = _make_config(dim, hidden, depth, embed_dim=embed_dim, time_dim=time_dim, time_input=time_input,
                       data_std=None if data_std is None else float(data_std), min_freq=float(min_freq),
                       max_freq=float(max_freq), gaussian_skip=bool(gaussian_skip))
    mean = np.asarray(data_mean, dtype=np.float32)
    if mean.ndim and mean.shape != cfg.event_shape and mean.shape != (cfg.dim,):
        raise ValueError(f"`data_mean` must be a scalar or of shape {cfg.event_shape}, got {mean.shape}")
    if not np.all(np.isfinite(mean)):
        raise ValueError("`data_mean` must be finite")
    center = jnp.broadcast_to(jnp.asarray(mean).reshape(-1), (cfg.dim,)).astype(jnp.float32)
    return _init_params(key, cfg, center), cfg


def _layer_norm(h: Array, scale: Array, bias: Array, eps: float = 1e-5) -> Array:
    mu = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.var(h, axis=-1, keepdims=True)
    return (h - mu) * jax.lax.rsqrt(var + eps) * scale + bias


def _embedding(cfg: ScoreMLPConfig, c: Array) -> Array:
    freqs = jnp.exp(jnp.linspace(math.log(cfg.min_freq), math.log(cfg.max_freq), cfg.embed_dim // 2))
    ang = c * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang), c[None]])


def score_mlp_apply(params: Params, config: ScoreMLPConfig, x: ArrayLike, t: ArrayLike, process=None) -> Array:
    """Noise prediction ``eps_theta(x, t)`` for ONE particle ``x`` of ``config.event_shape``.

    ``process`` (a :mod:`probkit.diffusion` process) supplies alpha_t, sigma_t and log-SNR;
    it may be omitted only when ``config.time_input == "t"`` and ``config.data_std is None``.
    """
    if process is None and (config.time_input == "log_snr" or config.data_std is not None):
        raise ValueError("`process` is required: this network embeds log-SNR(t) and/or scales its input by c_in(t)")
    x = jnp.asarray(x)
    t = jnp.asarray(t, dtype=jnp.float32)
    h = x.reshape(-1).astype(jnp.float32)
    skip = 0.0
    if config.data_std is not None:
        a, s = process.alpha(t), process.sigma(t)
        c_in = jax.lax.rsqrt(a**2 * config.data_std**2 + s**2)
        h = c_in * (h - a * params["center"])
        if config.gaussian_skip:
            skip = s * c_in * h  # = sigma c_in^2 (x - alpha mu): exact eps for N(mu, s_data^2 I)
    c = process.log_snr(t) / 4.0 if config.time_input == "log_snr" else 8.0 * t - 4.0
    pt = params["time"]
    temb = jax.nn.silu(_embedding(config, c.astype(jnp.float32)) @ pt["w1"] + pt["b1"])
    temb = jax.nn.silu(temb @ pt["w2"] + pt["b2"])

    h = h @ params["in"]["w"] + params["in"]["b"]

    def block(h: Array, p: Params) -> tuple[Array, None]:
        a = jax.nn.silu(_layer_norm(h, p["ln_scale"], p["ln_bias"]))
        a = jax.nn.silu(a @ p["w1"] + p["b1"] + temb @ p["wt"])
        return h + a @ p["w2"] + p["b2"], None

    h, _ = jax.lax.scan(block, h, params["blocks"])
    po = params["out"]
    out = jax.nn.silu(_layer_norm(h, po["ln_scale"], po["ln_bias"])) @ po["w"] + po["b"] + skip
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return out.reshape(x.shape).astype(dtype)


def make_eps_fn(params: Params, config: ScoreMLPConfig, process) -> ScoreFn:
    """``eps_fn(x, t)``: the network's noise prediction for one particle."""
    return lambda x, t: score_mlp_apply(params, config, x, t, process)


def make_score_fn(params: Params, config: ScoreMLPConfig, process) -> ScoreFn:
    """``score_fn(x, t) = -eps_theta(x, t) / sigma_t`` for ONE particle (the library vmaps)."""

    def score_fn(x: Array, t: Array) -> Array:
        return -score_mlp_apply(params, config, x, t, process) / process.sigma(t)

    return score_fn


def count_params(params: Params) -> int:
    """Number of scalar parameters."""
    return int(sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


# --------------------------------------------------------------------------------------
# Denoising score matching
# --------------------------------------------------------------------------------------
def stratified_times(key: Array, n: int, t_min: float) -> Array:
    """``n`` stratified uniform times on ``[t_min, 1]``: ``t_min + (1 - t_min) ((u + i/n) mod 1)``."""
    u = jax.random.uniform(key)
    return t_min + (1.0 - t_min) * jnp.mod(u + jnp.arange(n) / n, 1.0)


def dsm_loss(
    params: Params, config: ScoreMLPConfig, process, key: Array, x0: Array, t_min: float = 1e-3,
    t: Array | None = None,
) -> Array:
    """Monte Carlo DSM loss ``mean_i ||eps_theta(x_t^i, t_i) - eps_i||^2 / D`` on a batch ``x0``.

    ``x0`` has shape ``(B, *event_shape)``; ``t`` (shape ``(B,)``) overrides the stratified
    uniform times on ``[t_min, 1]``.
    """
    k_t, k_eps = jax.random.split(key)
    n = x0.shape[0]
    if t is None:
        t = stratified_times(k_t, n, t_min)
    eps = jax.random.normal(k_eps, x0.shape, jnp.float32)
    bshape = (n,) + (1,) * (x0.ndim - 1)
    xt = process.alpha(t).reshape(bshape) * x0 + process.sigma(t).reshape(bshape) * eps
    pred = jax.vmap(lambda x, s: score_mlp_apply(params, config, x, s, process))(xt, t)
    return jnp.mean((pred - eps) ** 2)


class TrainState(NamedTuple):
    """DSM training state: live parameters, their EMA, optimiser state, step counter."""

    params: Params
    ema_params: Params
    opt_state: Any
    step: Array


class TrainResult(NamedTuple):
    """Output of :func:`train_score_model`.

    ``params``: the EMA parameters (use these); ``losses``: per-step minibatch DSM losses,
    shape ``(num_steps,)``; ``state``: the final :class:`TrainState` (live parameters,
    optimiser state) to continue training.
    """

    params: Params
    config: ScoreMLPConfig
    losses: Array
    state: TrainState


def make_optimizer(
    num_steps: int, learning_rate: float = 2e-3, warmup_steps: int | None = None, weight_decay: float = 0.0,
    grad_clip: float = 1.0,
) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW whose rate warms up linearly over ``warmup_steps``
    (default ``min(1000, num_steps // 20)``) and decays by a cosine to 1% of its peak."""
    if warmup_steps is None:
        warmup_steps = min(1000, max(1, num_steps // 20))
    warmup_steps = max(0, min(int(warmup_steps), num_steps - 1))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup_steps, max(num_steps, warmup_steps + 1), end_value=0.01 * learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adamw(schedule, weight_decay=weight_decay))


def dsm_train_init(params: Params, optimizer: optax.GradientTransformation) -> TrainState:
    """Initial :class:`TrainState` (EMA starts at ``params``)."""
    return TrainState(params, params, optimizer.init(params), jnp.zeros((), jnp.int32))


def make_dsm_train_step(
    config: ScoreMLPConfig, process, optimizer: optax.GradientTransformation, data: Array, batch_size: int,
    t_min: float = 1e-3, ema_decay: float = 0.999,
) -> Callable[[TrainState, Array], tuple[TrainState, Array]]:
    """``step(state, key) -> (state, loss)``: one DSM step on a minibatch drawn with
    replacement from ``data`` inside the step (no host transfer).

    EMA: ``ema <- d_k ema + (1 - d_k) params`` with the warm-up decay
    ``d_k = min(ema_decay, (1 + k) / (10 + k))`` so that early averages forget the init.
    """

    def step(state: TrainState, key: Array) -> tuple[TrainState, Array]:
        k_idx, k_loss = jax.random.split(key)
        idx = jax.random.randint(k_idx, (batch_size,), 0, data.shape[0])
        loss, grads = jax.value_and_grad(dsm_loss)(state.params, config, process, k_loss, data[idx], t_min)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        k = state.step.astype(jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + k) / (10.0 + k))
        ema = optax.incremental_update(params, state.ema_params, 1.0 - decay)
        return TrainState(params, ema, opt_state, state.step + 1), loss

    return step


def _check_data(data: Any) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim < 2:
        raise ValueError(f"`data` must have shape (n, *event_shape) with ndim >= 2, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"`data` must be non-empty, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"`data` must be real numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`data` contains non-finite values (NaN or inf)")
    return arr


def train_score_model(
    key: Array,
    data: ArrayLike,
    process,
    num_steps: int,
    batch_size: int = 256,
    *,
    hidden: int = 256,
    depth: int = 3,
    learning_rate: float = 2e-3,
    warmup_steps: int | None = None,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    t_min: float | None = None,
    chunk_size: int = 500,
    init: tuple[Params, ScoreMLPConfig] | None = None,
    callback: Callable[[int, np.ndarray, TrainState], None] | None = None,
    **net_kwargs: Any,
) -> TrainResult:
    """Train a noise-prediction MLP on ``data`` (shape ``(n, *event_shape)``) by DSM.

    ``num_steps`` AdamW steps (warmup + cosine schedule, :func:`make_optimizer`) run in jitted
    ``lax.scan`` chunks of ``chunk_size``; after each chunk ``callback(steps_done,
    chunk_losses, state)`` is called on the host if given. Times are stratified-uniform on
    ``[t_min, 1]`` (``t_min`` defaults to ``process.t_min``). ``init=(params, config)``
    continues from existing weights; otherwise a network is initialised with ``hidden``,
    ``depth`` and ``net_kwargs`` (see :func:`init_score_mlp`); ``data_mean`` defaults to the
    per-coordinate mean of the data and ``data_std`` to the root mean per-coordinate variance. Returns :class:`TrainResult` (EMA parameters).
    """
    arr = _check_data(data)
    _check_pos_int("num_steps", num_steps)
    _check_pos_int("batch_size", batch_size)
    _check_pos_int("chunk_size", chunk_size)
    _check_pos_float("learning_rate", learning_rate)
    _check_pos_float("grad_clip", grad_clip)
    if not (isinstance(ema_decay, (int, float)) and 0.0 <= ema_decay < 1.0):
        raise ValueError(f"`ema_decay` must lie in [0, 1), got {ema_decay!r}")
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay!r}")
    if not all(hasattr(process, a) for a in ("alpha", "sigma", "log_snr", "t_min")):
        raise ValueError(f"`process` must be a probkit.diffusion process, got {type(process).__name__}")
    t_min = float(process.t_min if t_min is None else t_min)
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"`t_min` must lie in (0, 1), got {t_min!r}")
    if warmup_steps is not None and (isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int)
                                     or warmup_steps < 0):
        raise ValueError(f"`warmup_steps` must be a non-negative integer, got {warmup_steps!r}")

    data_j = jnp.asarray(arr, dtype=jnp.float32)
    k_init, k_train = jax.random.split(key)
    if init is None:
        std = float(np.sqrt(arr.reshape(arr.shape[0], -1).var(axis=0).mean()))
        net_kwargs.setdefault("data_std", std if std > 0 else 1.0)
        net_kwargs.setdefault("data_mean", arr.mean(axis=0))
        params, config = init_score_mlp(k_init, arr.shape[1:], hidden, depth, **net_kwargs)
    else:
        params, config = init
        if tuple(config.event_shape) != tuple(arr.shape[1:]):
            raise ValueError(f"`init` config has event_shape {config.event_shape}, `data` has {arr.shape[1:]}")

    optimizer = make_optimizer(num_steps, learning_rate, warmup_steps, weight_decay, grad_clip)
    step = make_dsm_train_step(config, process, optimizer, data_j, batch_size, t_min, ema_decay)

    @jax.jit
    def run_chunk(state: TrainState, keys: Array) -> tuple[TrainState, Array]:
        return jax.lax.scan(step, state, keys)

    state = dsm_train_init(params, optimizer)
    keys = jax.random.split(k_train, num_steps)
    losses, done = [], 0
    while done < num_steps:
        n = min(chunk_size, num_steps - done)
        state, chunk_losses = run_chunk(state, keys[done : done + n])
        done += n
        losses.append(chunk_losses)
        if callback is not None:
            callback(done, np.asarray(chunk_losses), state)
    losses = jnp.concatenate(losses)
    if not bool(jnp.all(jnp.isfinite(losses))):
        raise FloatingPointError("training diverged (non-finite DSM loss); lower `learning_rate`")
    return TrainResult(state.ema_params, config, losses, state)


# --------------------------------------------------------------------------------------
# Save / load without pickle: .npz of named arrays + .json of metadata
# --------------------------------------------------------------------------------------
def _base_path(path: str | os.PathLike) -> str:
    p = os.fspath(path)
    for suffix in (".npz", ".json"):
        if p.endswith(suffix):
            return p[: -len(suffix)]
    return p


def _key_name(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _named_leaves(tree: Any) -> dict[str, Any]:
    """``{"blocks/w1": leaf, ...}``: leaves keyed by their tree path."""
    return {_key_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _template(config: ScoreMLPConfig) -> Params:
    """Shapes and dtypes of the parameters described by ``config`` (nothing computed)."""
    return jax.eval_shape(lambda: _init_params(jax.random.PRNGKey(0), config))


def _process_to_dict(process) -> dict[str, Any]:
    name = type(process).__name__
    if name not in _PROCESS_NAMES or not dataclasses.is_dataclass(process):
        raise ValueError(f"`process` must be one of probkit.diffusion.{_PROCESS_NAMES}, got {type(process).__name__}")
    return {"name": name, "params": dataclasses.asdict(process)}


def _process_from_dict(d: Any):
    from probkit import diffusion

    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("params"), dict):
        raise ValueError("metadata field 'process' must be an object with a 'name' and a 'params' object")
    if d["name"] not in _PROCESS_NAMES:
        raise ValueError(f"unknown process {d['name']!r}; expected one of {_PROCESS_NAMES}")
    cls = getattr(diffusion, d["name"])
    try:
        return cls(**d["params"])
    except TypeError as e:
        raise ValueError(f"bad parameters for process {d['name']}: {e}") from None


def save_score_model(
    path: str | os.PathLike, params: Params, config: ScoreMLPConfig, process, *, dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Write ``<path>.npz`` (arrays keyed by tree path, e.g. ``blocks/w1``) and ``<path>.json``.

    The JSON holds the format name and version, the network config, the process (class name
    and hyperparameters), each array's shape and stored dtype, and optional JSON-serialisable
    ``metadata`` (e.g. the training recipe). ``dtype="float16"`` halves the files; loading
    always returns float32. No pickle anywhere. Returns the two file names.
    """
    if not isinstance(config, ScoreMLPConfig):
        raise ValueError(f"`config` must be a ScoreMLPConfig, got {type(config).__name__}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"`dtype` must be 'float32' or 'float16', got {dtype!r}")
    proc = _process_to_dict(process)
    arrays = {k: np.asarray(v) for k, v in _named_leaves(params).items()}
    expected = _named_leaves(_template(config))
    if set(arrays) != set(expected) or any(arrays[k].shape != expected[k].shape for k in arrays):
        raise ValueError("`params` do not match `config` (different array names or shapes)")
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": config.to_dict(),
        "process": proc,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        "metadata": metadata or {},
    }
    base = _base_path(path)
    if os.path.dirname(base):
        os.makedirs(os.path.dirname(base), exist_ok=True)
    np.savez(base + ".npz", **arrays)
    with open(base + ".json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return base + ".npz", base + ".json"


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed JSON side-car of a saved model (validated format name and version)."""
    base = _base_path(path)
    if not os.path.exists(base + ".json"):
        raise ValueError(f"`path`: {base}.json does not exist")
    try:
        with open(base + ".json") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"`path`: {base}.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"`path`: {base}.json is not a {FORMAT_NAME} file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"`path`: unsupported format version {meta.get('version')!r} (expected {FORMAT_VERSION})")
    return meta


def load_score_model(path: str | os.PathLike) -> tuple[Params, ScoreMLPConfig, Any]:
    """Read a model written by :func:`save_score_model`; returns ``(params, config, process)``.

    Never unpickles (``allow_pickle=False``). Raises ValueError on a missing file, a wrong
    format name or version, a malformed config or process, missing or unexpected arrays,
    wrong shapes, non-float or non-finite values.
    """
    base = _base_path(path)
    meta = read_metadata(base)
    config = ScoreMLPConfig.from_dict(meta.get("config"))
    process = _process_from_dict(meta.get("process"))
    if not os.path.exists(base + ".npz"):
        raise ValueError(f"`path`: {base}.npz does not exist")
    template = _template(config)
    expected = _named_leaves(template)
    try:
        npz = np.load(base + ".npz", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
        raise ValueError(f"`path`: cannot read {base}.npz ({e})") from None
    loaded = {}
    with npz:
        names = set(npz.files)
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        if missing or extra:
            raise ValueError(f"`path`: arrays do not match the config (missing {missing}, unexpected {extra})")
        for name, spec in expected.items():
            try:
                arr = npz[name]
            except ValueError as e:  # object arrays would need pickle
                raise ValueError(f"`path`: array {name!r} is not a plain numeric array ({e})") from None
            if arr.shape != spec.shape:
                raise ValueError(f"`path`: array {name!r} has shape {arr.shape}, config implies {spec.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"`path`: array {name!r} has dtype {arr.dtype}, expected floating point")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"`path`: array {name!r} contains non-finite values")
            loaded[name] = jnp.asarray(arr, dtype=jnp.float32)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    params = jax.tree_util.tree_unflatten(treedef, [loaded[_key_name(p)] for p, _ in leaves])
    return params, config, process
