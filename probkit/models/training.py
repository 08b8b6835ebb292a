r"""Denoising score matching for the score MLP, with optax, non-finite flags and checkpoints.

Training minimises the denoising score matching loss (Vincent 2011; Song et al. 2021,
arXiv 2011.13456) in its noise-prediction form

    L(theta) = E_{t, x_0, eps} || eps_theta(alpha_t x_0 + sigma_t eps, t) - eps ||^2 / D,

i.e. score matching with weighting lambda(t) = sigma_t^2 (``D`` = number of coordinates, so
the untrained network, which outputs zero, has loss 1). Times are uniform on ``[t_min, 1]``
(no importance weighting), drawn with the stratified ("low-discrepancy") sampler of Kingma
et al. 2021 (VDM, arXiv 2107.00630): one uniform offset per batch,
``t_i = t_min + (1 - t_min) ((u + i/B) mod 1)`` — same marginal, lower-variance loss.

Every DSM trainer of probkit (this one, the conditional one, the Boltzmann one) shares
:func:`check_hyper`, :func:`ema_train_step`, :func:`noised_batch` and the host loop :func:`fit`.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from probkit import _checks, _io
from probkit.models.score_mlp import Params, ScoreMLPConfig, init_score_mlp, score_mlp_apply
from probkit.models.serialization import process_to_dict

Array = jax.Array

__all__ = [
    "stratified_times", "dsm_loss", "make_optimizer", "TrainState", "TrainResult", "dsm_train_init",
    "make_dsm_train_step", "train_score_model", "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "probkit.train_checkpoint"
_CHECKPOINT_VERSION = 1


def stratified_times(key: Array, n: int, t_min: float) -> Array:
    """``n`` stratified uniform times on ``[t_min, 1]``: ``t_min + (1 - t_min) ((u + i/n) mod 1)``."""
    u = jax.random.uniform(key)
    return t_min + (1.0 - t_min) * jnp.mod(u + jnp.arange(n) / n, 1.0)


def noised_batch(process, key: Array, x0: Array, t_min: float, t: Array | None = None) -> tuple[Array, Array, Array]:
    """``(t, eps, x_t = alpha_t x0 + sigma_t eps)`` for a batch ``x0`` ``(B, ...)``: stratified times
    on ``[t_min, 1]`` (unless ``t`` is given) and standard normal noise."""
    k_t, k_eps = jax.random.split(key)
    n = x0.shape[0]
    if t is None:
        t = stratified_times(k_t, n, t_min)
    eps = jax.random.normal(k_eps, x0.shape, jnp.float32)
    bshape = (n,) + (1,) * (x0.ndim - 1)
    return t, eps, process.alpha(t).reshape(bshape) * x0 + process.sigma(t).reshape(bshape) * eps


def dsm_loss(
    params: Params, config: ScoreMLPConfig, process, key: Array, x0: Array, t_min: float = 1e-3,
    t: Array | None = None,
) -> Array:
    """Monte Carlo DSM loss ``mean_i ||eps_theta(x_t^i, t_i) - eps_i||^2 / D`` on a batch ``x0``.

    ``x0`` has shape ``(B, *event_shape)``; ``t`` (shape ``(B,)``) overrides the stratified
    uniform times on ``[t_min, 1]``.
    """
    t, eps, xt = noised_batch(process, key, x0, t_min, t)
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


def ema_train_step(
    loss_fn: Callable[[Params, Array, Any], Array], optimizer: optax.GradientTransformation, data: Any,
    batch_size: int, ema_decay: float = 0.999,
) -> Callable[[TrainState, Array], tuple[TrainState, Array]]:
    """``step(state, key) -> (state, loss)``: ``loss_fn(params, key, batch)`` on a minibatch drawn
    with replacement from ``data`` (a pytree of arrays with a common leading axis) inside the
    step (no host transfer), one optax update, and the EMA
    ``ema <- d_k ema + (1 - d_k) params`` with the warm-up decay
    ``d_k = min(ema_decay, (1 + k) / (10 + k))`` so that early averages forget the init."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]

    def step(state: TrainState, key: Array) -> tuple[TrainState, Array]:
        k_idx, k_loss = jax.random.split(key)
        idx = jax.random.randint(k_idx, (batch_size,), 0, n)
        batch = jax.tree_util.tree_map(lambda a: a[idx], data)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, k_loss, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        k = state.step.astype(jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + k) / (10.0 + k))
        ema = optax.incremental_update(params, state.ema_params, 1.0 - decay)
        return TrainState(params, ema, opt_state, state.step + 1), loss

    return step


def make_dsm_train_step(
    config: ScoreMLPConfig, process, optimizer: optax.GradientTransformation, data: Array, batch_size: int,
    t_min: float = 1e-3, ema_decay: float = 0.999,
) -> Callable[[TrainState, Array], tuple[TrainState, Array]]:
    """``step(state, key) -> (state, loss)``: one DSM step with EMA (:func:`ema_train_step`)."""
    return ema_train_step(lambda p, k, x0: dsm_loss(p, config, process, k, x0, t_min), optimizer, data, batch_size,
                          ema_decay)


def check_data(data: Any) -> np.ndarray:
    try:
        arr = np.asarray(data)
    except Exception:  # noqa: BLE001 - ragged lists and the like
        raise ValueError("`data` must be an array of shape (n, *event_shape)") from None
    if arr.ndim < 2:
        raise ValueError(f"`data` must have shape (n, *event_shape) with ndim >= 2, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"`data` must be non-empty, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"`data` must be real numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`data` contains non-finite values (NaN or inf)")
    return arr


def _all_finite(tree: Any) -> Array:
    ok = jnp.array(True)
    for leaf in jax.tree_util.tree_leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def _process_record(process) -> Any:
    try:
        return process_to_dict(process)
    except ValueError:  # a user-defined process: compare its repr
        return {"repr": repr(process)}


def _load_checkpoint(path: str, template: TrainState, recipe: dict[str, Any]) -> tuple[TrainState, np.ndarray, int]:
    meta, arrays, base = _io.read_checkpoint(path, CHECKPOINT_FORMAT, _CHECKPOINT_VERSION)
    where = f"`checkpoint` {base}.npz"
    _io.check_recipe(meta, recipe, base, "the initial state")
    done = meta.get("step")
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= recipe["num_steps"]:
        raise ValueError(f"`checkpoint` {base}.json has an invalid 'step' {done!r}")
    state = _io.arrays_to_tree(template, arrays, "state", where)
    losses = arrays.get("losses")
    if losses is None or losses.shape != (done,) or losses.dtype != np.float32:
        raise ValueError(f"{where}: array 'losses' must have shape ({done},) and dtype float32")
    if int(state.step) != done:
        raise ValueError(f"{where}: the saved state is at step {int(state.step)}, the .json says {done}")
    return state, losses, done


class Hyper(NamedTuple):
    """The static (hashable) optimiser and minibatch settings of a training run (validated by
    :func:`check_hyper`)."""

    num_steps: int
    learning_rate: float
    warmup_steps: int | None
    weight_decay: float
    grad_clip: float
    batch_size: int
    t_min: float
    ema_decay: float

    def optimizer(self) -> optax.GradientTransformation:
        return make_optimizer(self.num_steps, self.learning_rate, self.warmup_steps, self.weight_decay, self.grad_clip)


def check_hyper(process, num_steps: Any, batch_size: Any, learning_rate: Any = 2e-3, warmup_steps: Any = None,
                weight_decay: Any = 0.0, grad_clip: Any = 1.0, ema_decay: Any = 0.999, t_min: Any = None) -> Hyper:
    """Validate the settings shared by every DSM trainer (ValueError naming the argument);
    ``t_min`` defaults to ``process.t_min``."""
    if not all(hasattr(process, a) for a in ("alpha", "sigma", "log_snr", "t_min")):
        raise ValueError(f"`process` must be a probkit.diffusion process, got {type(process).__name__}")
    pos = dict(low=0.0, low_open=True)
    return Hyper(_checks.positive_int("num_steps", num_steps), _checks.scalar("learning_rate", learning_rate, **pos),
                 None if warmup_steps is None else _checks.positive_int("warmup_steps", warmup_steps, minimum=0),
                 _checks.scalar("weight_decay", weight_decay, low=0.0), _checks.scalar("grad_clip", grad_clip, **pos),
                 _checks.positive_int("batch_size", batch_size),
                 _checks.scalar("t_min", process.t_min if t_min is None else t_min, high=1.0, high_open=True, **pos),
                 _checks.scalar("ema_decay", ema_decay, low=0.0, high=1.0, high_open=True))


class StaticArg:
    """A static jit argument: hashed by value when possible (a frozen dataclass process), else by
    identity, so that repeated calls with equal settings reuse the compiled chunk."""

    def __init__(self, obj: Any):
        self.obj = obj
        try:
            self._hash, self._by_value = hash(obj), True
        except TypeError:
            self._hash, self._by_value = id(obj), False

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StaticArg):
            return NotImplemented
        if self.obj is other.obj:
            return True
        return self._by_value and other._by_value and type(self.obj) is type(other.obj) and bool(self.obj == other.obj)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _run_chunk(state: TrainState, keys: Array, data: Any, make_step: Callable, static: tuple
               ) -> tuple[TrainState, tuple[Array, Array]]:
    """``lax.scan`` of ``make_step(data, *static)`` over ``keys``, with per-step non-finite flags.
    ``data`` is traced and the settings are static, so equal settings compile once per chunk length."""
    step = make_step(data, *static)

    def flagged_step(state: TrainState, key: Array) -> tuple[TrainState, tuple[Array, Array]]:
        state, loss = step(state, key)
        return state, (loss, jnp.isfinite(loss) & _all_finite(state.params))

    return jax.lax.scan(flagged_step, state, keys)


def fit(state: TrainState, keys: Array, data: Any, make_step: Callable, static: tuple, chunk_size: int, *,
        done: int = 0, losses: np.ndarray | None = None, callback: Callable | None = None, progress: bool = False,
        after_chunk: Callable | None = None) -> tuple[TrainState, np.ndarray]:
    """The host loop of every trainer: run the steps ``keys[done:]`` in jitted chunks (boundaries
    at multiples of ``chunk_size``), raise ``ValueError`` naming the first step whose loss or
    parameters became non-finite, then call ``after_chunk(state, losses, done)`` (checkpoints) and
    ``callback(done, chunk_losses, state)``; ``progress=True`` shows a ``tqdm`` bar with the
    chunk's mean loss. Returns the final state and the per-step losses."""
    from tqdm.auto import tqdm

    num_steps = keys.shape[0]
    losses = np.zeros(num_steps, np.float32) if losses is None else losses
    bar = tqdm(total=num_steps, initial=done, desc="train", unit="step", leave=False, disable=not progress)
    while done < num_steps:
        n = min(chunk_size - done % chunk_size, num_steps - done)
        new_state, (chunk_losses, ok) = _run_chunk(state, keys[done : done + n], data, make_step, static)
        ok, chunk_losses = np.asarray(ok), np.asarray(chunk_losses)
        if not ok.all():
            k = done + int(np.argmin(ok))
            what = "the DSM loss" if not np.isfinite(chunk_losses[k - done]) else "a network parameter"
            raise ValueError(
                f"training diverged at step {k} of {num_steps}: {what} became non-finite (NaN/inf) in "
                "the loss / the optax update; lower `learning_rate` or `grad_clip`, or rescale `data`"
            )
        state = new_state
        losses[done : done + n] = chunk_losses
        done += n
        if after_chunk is not None:
            after_chunk(state, losses, done)
        bar.update(n)
        bar.set_postfix(loss=f"{float(np.mean(chunk_losses)):.4g}")
        if callback is not None:
            callback(done, chunk_losses, state)
    bar.close()
    return state, losses


def _dsm_step(data: Array, config: ScoreMLPConfig, process: StaticArg, hyper: Hyper, factory: Callable):
    return factory(config, process.obj, hyper.optimizer(), data, hyper.batch_size, hyper.t_min, hyper.ema_decay)


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = False,
    **net_kwargs: Any,
) -> TrainResult:
    """Train a noise-prediction MLP on ``data`` (shape ``(n, *event_shape)``) by DSM.

    ``num_steps`` AdamW steps (warmup + cosine schedule, :func:`make_optimizer`) run in jitted
    ``lax.scan`` chunks of ``chunk_size`` (boundaries at multiples of ``chunk_size``); after
    each chunk (and its checkpoint) ``callback(steps_done, chunk_losses, state)`` is called on
    the host if given.
    Times are stratified-uniform on ``[t_min, 1]`` (``t_min`` defaults to ``process.t_min``).
    ``init=(params, config)`` starts from existing weights (a warm start: fresh optimiser
    state and schedule); otherwise a network is initialised with ``hidden``, ``depth`` and
    ``net_kwargs`` (see :func:`~probkit.models.score_mlp.init_score_mlp`); ``data_mean``
    defaults to the per-coordinate mean of the data and ``data_std`` to the root mean
    per-coordinate variance.

    Non-finite values: each step flags a NaN/inf DSM loss or parameter inside the scan; after
    the chunk that contains it a ``ValueError`` names the first such step (lower
    ``learning_rate`` or ``grad_clip``, or rescale ``data``). Nothing is checkpointed past it.

    Checkpoints (docs/checkpointing.md): with ``checkpoint=path`` the full state is written to
    ``<path>.npz`` + ``<path>.json`` every ``checkpoint_every`` steps (a multiple of
    ``chunk_size``; default ``chunk_size``) and at the end. With ``resume=True`` (default) the
    same call continues from the file, bitwise equal to an uninterrupted run; a call whose
    arguments differ from the recorded recipe raises ``ValueError`` naming the argument.

    ``progress=True`` shows a ``tqdm`` bar of the steps done, updated after each chunk with the
    chunk's mean loss (host side: nothing enters the compiled program).

    Returns :class:`TrainResult` (EMA parameters).
    """
    arr = check_data(data)
    hyper = check_hyper(process, num_steps, batch_size, learning_rate, warmup_steps, weight_decay, grad_clip,
                        ema_decay, t_min)
    chunk_size = _checks.positive_int("chunk_size", chunk_size)
    if callback is not None and not callable(callback):
        raise ValueError("`callback` must be callable")
    if checkpoint is not None:
        checkpoint = _io.base_path(checkpoint, "checkpoint")
        every = chunk_size if checkpoint_every is None else _checks.positive_int("checkpoint_every", checkpoint_every)
        if every % chunk_size:
            raise ValueError(f"`checkpoint_every` ({every}) must be a multiple of `chunk_size` ({chunk_size}): "
                             "checkpoints are written between jitted chunks")
    elif checkpoint_every is not None:
        raise ValueError("`checkpoint_every` needs `checkpoint` (the path of the checkpoint files)")
    key_record = _io.key_to_json(key)

    k_init, k_train = jax.random.split(key)
    if init is None:
        params, config = init_score_mlp(k_init, arr.shape[1:], hidden, depth, **data_scale(arr, net_kwargs))
    else:
        if not (isinstance(init, tuple) and len(init) == 2 and isinstance(init[1], ScoreMLPConfig)):
            raise ValueError("`init` must be a (params, ScoreMLPConfig) pair")
        params, config = init
        if tuple(config.event_shape) != tuple(arr.shape[1:]):
            raise ValueError(f"`init` config has event_shape {config.event_shape}, `data` has {arr.shape[1:]}")

    state = dsm_train_init(params, hyper.optimizer())
    losses = np.zeros(hyper.num_steps, np.float32)
    done, after_chunk = 0, None
    if checkpoint is not None:
        recipe = {  # checked in this order on resume: the first difference is named
            "key": key_record,
            "data": {"shape": list(arr.shape), "sha256": _io.sha256_arrays([np.asarray(arr, np.float32)])},
            **hyper._asdict(), "chunk_size": chunk_size, "config": config.to_dict(),
            "process": _process_record(process), "init": _io.sha256_arrays(jax.tree_util.tree_leaves(params)),
        }
        if resume and _io.checkpoint_exists(checkpoint):
            state, saved_losses, done = _load_checkpoint(checkpoint, state, recipe)
            losses[:done] = saved_losses

        def after_chunk(state: TrainState, losses: np.ndarray, done: int) -> None:
            if done % every == 0 or done == hyper.num_steps:
                arrays = {**_io.tree_to_arrays(state, "state"), "losses": np.asarray(losses[:done], np.float32)}
                meta = {"format": CHECKPOINT_FORMAT, "version": _CHECKPOINT_VERSION, "step": done, "recipe": recipe}
                _io.write_files(checkpoint, arrays, meta, keep_previous=True)

    state, losses = fit(state, jax.random.split(k_train, hyper.num_steps), jnp.asarray(arr, jnp.float32), _dsm_step,
                        (config, StaticArg(process), hyper, make_dsm_train_step), chunk_size, done=done, losses=losses,
                        callback=callback, progress=progress, after_chunk=after_chunk)
    return TrainResult(state.ema_params, config, jnp.asarray(losses), state)


def data_scale(arr: np.ndarray, net_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``net_kwargs`` with ``data_mean`` / ``data_std`` defaulting to the data's per-coordinate
    mean and root mean per-coordinate variance (1 for constant data)."""
    std = float(np.sqrt(arr.reshape(arr.shape[0], -1).astype(np.float64).var(axis=0).mean()))
    return {"data_std": std if std > 0 else 1.0, "data_mean": arr.astype(np.float64).mean(axis=0), **net_kwargs}
