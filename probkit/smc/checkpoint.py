r"""Checkpoint and resume a Feynman-Kac run: the scan in chunks, the state saved between them.

:func:`run_smc_checkpointed` runs the same particle system as :func:`probkit.smc.run_smc`, built
only from the engine's public pieces (:func:`~probkit.smc.smc_init`,
:func:`~probkit.smc.smc_step`, :class:`~probkit.smc.SMCState`), but as a sequence of jitted
``lax.scan`` chunks of ``checkpoint_every`` steps. After each chunk it writes

* ``<path>.npz``: the :class:`~probkit.smc.SMCState` (particles — any pytree —, normalised
  log-weights, running log Z), the stacked per-step history (:class:`~probkit.smc.StepInfo`)
  of the steps done, and the root PRNG key;
* ``<path>.json``: format and version, the step index, the recipe (key, number of particles,
  the time grid, resampling settings, a digest of the initial particle system) and the
  SHA-256 of the ``.npz``;

with no pickle, each file written atomically and the previous pair kept as ``<path>.prev.*``.
Calling it again with the same arguments resumes from the file. Key schedule: ``k_init, k_run =
split(key)``; step k uses ``split(k_run, K)[k]`` whatever the chunking, so a resumed run equals
the uninterrupted run **bitwise**. Non-finite values and all-zero weights are flagged inside the
scan (as the engine does) and reported as ``ValueError`` naming the step after the chunk that
contains it; that chunk is not checkpointed.

The model's functions cannot be saved: resume with the same model. A different model, number
of particles or key is detected through the digest of the initial particles and weights.
"""
from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks, _io
from probkit.smc.correctors import MoveTarget
from probkit.smc.feynman_kac import FeynmanKacModel, SMCState, check_history, make_config, smc_init, smc_step

Array = jax.Array
PyTree = Any

__all__ = ["SMCRun", "run_smc_checkpointed", "read_checkpoint_metadata", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "probkit.smc_checkpoint"
_VERSION = 1


class SMCRun(NamedTuple):
    """Result of :func:`run_smc_checkpointed`.

    Attributes:
      state: the final :class:`~probkit.smc.SMCState` (``particles``, normalised
        ``log_weights``, ``log_evidence``).
      history: the engine's per-step diagnostics (:class:`~probkit.smc.StepInfo`), each field
        stacked over the K steps (``ess``, ``resampled``, ``log_weight_spread``, ...).
      times: ``(K + 1,)`` the grid.
    """

    state: SMCState
    history: Any
    times: Array

    @property
    def particles(self) -> PyTree:
        return self.state.particles

    @property
    def log_weights(self) -> Array:
        return self.state.log_weights

    @property
    def log_evidence(self) -> Array:
        return self.state.log_evidence

    @property
    def ess(self) -> Array:
        return self.history.ess


def _run_chunk(state, keys, ts_from, ts_to, model, config, target):
    def body(s, inp):
        k, t, t_next = inp
        return smc_step(k, s, t, t_next, model, config, target)

    return jax.lax.scan(body, state, (keys, ts_from, ts_to))


_run_chunk_jit = jax.jit(_run_chunk, static_argnums=(4, 5, 6))
_init_jit = jax.jit(smc_init, static_argnums=(1, 2, 3))


def _stack_template(info_spec, n: int):
    return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct((n, *s.shape), s.dtype), info_spec)


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON side-car of an SMC checkpoint (``step``, ``num_steps``, ``recipe``, ...)."""
    return _io.read_json(path, CHECKPOINT_FORMAT, _VERSION)


def run_smc_checkpointed(
    key: Array,
    model: FeynmanKacModel,
    num_particles: int,
    ts: Array,
    *,
    checkpoint: str | os.PathLike,
    checkpoint_every: int,
    target: MoveTarget | None = None,
    resume: bool = True,
    callback: Callable[[int, SMCState], None] | None = None,
    **options,
) -> SMCRun:
    """Run the Feynman-Kac particle system of ``model`` on ``ts`` in chunks, checkpointing.

    Args:
      key: PRNG key (raw ``PRNGKey`` or typed ``jax.random.key``).
      model: a :class:`~probkit.smc.FeynmanKacModel`.
      num_particles: N.
      ts: ``(K + 1,)`` strictly decreasing times.
      checkpoint: path of the checkpoint files (``.npz`` / ``.json`` appended; missing folders
        are created).
      checkpoint_every: steps per jitted chunk; the state is saved after each chunk.
      target, **options: as in :func:`probkit.smc.run_smc` (``resampling`` must be a name).
      resume: continue from ``checkpoint`` if it exists (default); ``False`` starts again and
        overwrites it.
      callback: ``callback(steps_done, state)`` on the host after each chunk and its checkpoint.

    Returns:
      :class:`SMCRun` (final state, stacked per-step history, the grid).

    Raises:
      ValueError: bad arguments; a checkpoint written by a different call (key, N, grid,
        settings or initial particle system differ: the first difference is named); a corrupt
        checkpoint file (named); non-finite values or all-zero weights (the step is named).
    """
    num_particles = _checks.positive_int("num_particles", num_particles)
    every = _checks.positive_int("checkpoint_every", checkpoint_every)
    if not isinstance(model, FeynmanKacModel):
        raise ValueError(f"`model` must be a probkit.smc.FeynmanKacModel, got {type(model).__name__}")
    try:
        ts_np = np.asarray(ts, dtype=np.dtype(jnp.result_type(float)))
    except (TypeError, ValueError):
        raise ValueError("`ts` must be a 1-D array of times") from None
    resampling = options.get("resampling", "systematic")
    if not isinstance(resampling, str):
        raise ValueError(f"`resampling` must be a name (a checkpoint records it), got {resampling!r}")
    target = MoveTarget() if target is None else target
    config = make_config(num_particles, ts_np, target.logdensity_fn is not None, **options)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"`checkpoint` must be a path, got {type(checkpoint).__name__}")
    if callback is not None and not callable(callback):
        raise ValueError("`callback` must be callable")
    key_record = _io.key_to_json(key)
    base = _io.base_path(checkpoint)

    num_steps = ts_np.shape[0] - 1
    ts_j = jnp.asarray(ts_np)
    k_init, k_run = jax.random.split(key)
    keys = jax.random.split(k_run, num_steps)

    state = _init_jit(k_init, model, num_particles, config)
    if np.any(np.isnan(np.asarray(state.log_weights))):  # NaN/+inf log G_0 (or all -inf) after normalising
        raise ValueError("`init_log_weight` (log G_0) returned NaN or +inf (or -inf for every particle) on the "
                         "initial particles; it must be finite or -inf")
    info_spec = jax.eval_shape(lambda s, k: smc_step(k, s, ts_j[0], ts_j[1], model, config, target)[1], state, keys[0])
    recipe = {  # checked in this order on resume
        "key": key_record,
        "num_particles": num_particles,
        "ts": [float(t) for t in ts_np],
        "resampling": resampling,
        "ess_threshold": config.ess_threshold,
        "corrector": None if config.corrector is None else str(config.corrector.name),
        "checkpoint_every": every,
        "initial_state": _io.sha256_arrays(jax.tree_util.tree_leaves(state)),
    }

    done, history = 0, None
    if resume and _io.checkpoint_exists(base):
        meta, arrays, used = _io.read_checkpoint(base, CHECKPOINT_FORMAT, _VERSION)
        where = f"`checkpoint` {used}.npz"
        _io.check_recipe(meta, recipe, used, "`model` (or `key`, `num_particles`)")
        done = meta.get("step")
        if isinstance(done, bool) or not isinstance(done, int) or not 0 < done <= num_steps:
            raise ValueError(f"`checkpoint` {used}.json has an invalid 'step' {done!r}")
        state = _io.arrays_to_tree(jax.eval_shape(lambda: state), arrays, "state", where)
        history = _io.arrays_to_tree(_stack_template(info_spec, done), arrays, "history", where)

    chunks = [history] if history is not None else []
    while done < num_steps:
        n = min(every, num_steps - done)
        new_state, info = _run_chunk_jit(state, keys[done : done + n], ts_j[done : done + n],
                                         ts_j[done + 1 : done + n + 1], model, config, target)
        check_history(info, ts_np, done)
        state = new_state
        chunks.append(info)
        done += n
        history = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *chunks) if len(chunks) > 1 else chunks[0]
        chunks = [history]
        arrays = {**_io.tree_to_arrays(state, "state"), **_io.tree_to_arrays(history, "history")}
        meta = {"format": CHECKPOINT_FORMAT, "version": _VERSION, "step": done, "num_steps": num_steps,
                "recipe": recipe}
        _io.write_files(base, arrays, meta, keep_previous=True)
        if callback is not None:
            callback(done, state)
    return SMCRun(state, history, ts_j)
