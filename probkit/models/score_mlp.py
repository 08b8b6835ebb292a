"""Score-network architecture: a residual MLP noise predictor in pure JAX.

The network is a residual MLP that predicts the noise ``eps_theta(x, t)`` of
``x_t = alpha_t x_0 + sigma_t eps`` (Ho et al. 2020, "Denoising Diffusion Probabilistic
Models", arXiv 2006.11239); by Tweedie's formula the score is

    grad log p_t(x) = -E[eps | x_t = x] / sigma_t  ~=  s_theta(x, t) = -eps_theta(x, t) / sigma_t.

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

Training lives in :mod:`probkit.models.training`, saving and loading in
:mod:`probkit.models.serialization`; :mod:`probkit.models.nets` re-exports all three.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from probkit import _checks, _io

Array = jax.Array
Params = dict[str, Any]
ScoreFn = Callable[[Array, Array], Array]

__all__ = [
    "ScoreMLPConfig", "init_score_mlp", "score_mlp_apply", "make_eps_fn", "make_score_fn", "count_params",
    "param_template", "TIME_INPUTS",
]

TIME_INPUTS = ("log_snr", "t")


@dataclasses.dataclass(frozen=True)
class ScoreMLPConfig(_io.JsonConfig):
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
    _from_json = {"event_shape": functools.partial(_checks.shape, "event_shape")}

    @property
    def dim(self) -> int:
        return int(math.prod(self.event_shape))

    def _validate(self) -> None:
        for name in ("hidden", "depth", "time_dim", "embed_dim"):
            _checks.positive_int(name, getattr(self, name))
        if self.embed_dim % 2:
            raise ValueError(f"`embed_dim` must be even (sin and cos features), got {self.embed_dim}")
        _checks.choice("time_input", self.time_input, TIME_INPUTS)
        for name in ("data_std", "min_freq", "max_freq"):
            if getattr(self, name) is not None:
                _checks.scalar(name, getattr(self, name), low=0.0, low_open=True)
        if not isinstance(self.gaussian_skip, bool):
            raise ValueError(f"`gaussian_skip` must be a bool, got {self.gaussian_skip!r}")
        if self.min_freq >= self.max_freq:
            raise ValueError(f"need `min_freq` < `max_freq`, got {self.min_freq}, {self.max_freq}")


def _lecun(key: Array, fan_in: int, fan_out: int, scale: float = 1.0, lead: tuple[int, ...] = ()) -> Array:
    """LeCun-normal weights ``N(0, scale / fan_in)``."""
    return jax.random.normal(key, (*lead, fan_in, fan_out)) * math.sqrt(scale / fan_in)


def dense_init(key: Array, fan_in: int, fan_out: int, scale: float = 1.0, lead: tuple[int, ...] = ()) -> Params:
    """A dense layer ``{"w": LeCun-normal, "b": 0}`` (stacked along ``lead``)."""
    return {"w": _lecun(key, fan_in, fan_out, scale, lead), "b": jnp.zeros((*lead, fan_out))}


def sinusoidal_embedding(c: Array, embed_dim: int, min_freq: float = 0.1, max_freq: float = 30.0) -> Array:
    """``[sin(f_k c), cos(f_k c), c]`` at ``embed_dim // 2`` geometric frequencies ``f_k``."""
    ang = c * jnp.exp(jnp.linspace(math.log(min_freq), math.log(max_freq), embed_dim // 2))
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang), c[None]])


def _init_params(key: Array, cfg: ScoreMLPConfig, center: Array | None = None) -> Params:
    d, h, td, e, n = cfg.dim, cfg.hidden, cfg.time_dim, cfg.embed_dim, cfg.depth
    ks = jax.random.split(key, 6)
    return {
        "center": jnp.zeros(d) if center is None else center,
        "in": dense_init(ks[0], d, h),
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
    pos = dict(low=0.0, low_open=True)
    cfg = ScoreMLPConfig(  # NumPy scalars stored as Python ints / floats: a JSON-able config
        _checks.shape("dim", (dim,) if isinstance(dim, (int, np.integer)) else dim),
        _checks.positive_int("hidden", hidden), _checks.positive_int("depth", depth),
        _checks.positive_int("embed_dim", embed_dim), _checks.positive_int("time_dim", time_dim), time_input,
        None if data_std is None else _checks.scalar("data_std", data_std, **pos),
        _checks.scalar("min_freq", min_freq, **pos), _checks.scalar("max_freq", max_freq, **pos), bool(gaussian_skip))
    cfg._validate()
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
    emb = sinusoidal_embedding(c.astype(jnp.float32), config.embed_dim, config.min_freq, config.max_freq)
    temb = jax.nn.silu(emb @ pt["w1"] + pt["b1"])
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
    return lambda x, t: -score_mlp_apply(params, config, x, t, process) / process.sigma(t)


def count_params(params: Params) -> int:
    """Number of scalar parameters."""
    return int(sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def param_template(config: ScoreMLPConfig) -> Params:
    """Shapes and dtypes (``jax.ShapeDtypeStruct``) of the parameters described by ``config``;
    nothing is computed."""
    return jax.eval_shape(lambda: _init_params(jax.random.PRNGKey(0), config))
