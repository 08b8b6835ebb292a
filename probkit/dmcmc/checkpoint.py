r"""Checkpoint and resume DLG chains (:func:`probkit.dmcmc.dlg`): the Gibbs sweeps in chunks.

:func:`dlg_checkpointed` runs the chains of :func:`~probkit.dmcmc.dlg` (same arguments, same
validation) as a sequence of jitted ``lax.scan`` chunks of ``checkpoint_every`` sweeps, then the
denoising pass. After each chunk it writes, as :mod:`probkit.smc.checkpoint` does,

* ``<path>.npz``: the chain states (``x``, grid index, ``t``), the per-sweep noise levels and
  acceptances so far and the kept draws so far;
* ``<path>.json``: format and version, the sweep index, the recipe (key, sizes, a digest of the
  initial chain states) and the SHA-256 of the ``.npz``;

no pickle, each file written atomically, the previous pair kept as ``<path>.prev.*``. Calling it
again with the same arguments resumes from the file. The sweep keys are those of
:func:`~probkit.dmcmc.dlg`, fixed whatever the chunking, so a resumed run equals the
uninterrupted run **bitwise**. Non-finite chain states are flagged inside the scan and raised
(naming the sweep) after the chunk that contains them; that chunk is not checkpointed.
"""
from __future__ import annotations

import inspect
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks, _io
from probkit.dmcmc.dlg import DLGResult, _assemble, _check_flags, _prepare, _Program, _sweep, _sweep_keys, dlg
from probkit._jit import filter_jit

Array = jax.Array

__all__ = ["dlg_checkpointed", "read_dlg_checkpoint_metadata", "DLG_CHECKPOINT_FORMAT"]

DLG_CHECKPOINT_FORMAT = "probkit.dlg_checkpoint"
_VERSION = 2


def read_dlg_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON side-car of a DLG checkpoint (``sweep``, ``num_sweeps``, ``recipe``, ...)."""
    return _io.read_json(path, DLG_CHECKPOINT_FORMAT, _VERSION)


@filter_jit
def _init(p: _Program):
    return jax.vmap(p.kernel().init)(p.x_init)


@filter_jit
def _chunk(p: _Program, state, keys):
    """Sweeps ``keys`` ``(m, C)``: final state and per-sweep x, t, acceptance and flag ``(m, C, ...)``."""
    kernel = p.kernel()

    def body(s, k):
        s, (info, bad) = _sweep(kernel, s, k)
        return s, (s.x, s.t, info.acceptance_rate, bad)

    return jax.lax.scan(body, state, keys)


@filter_jit
def _finish(p: _Program, xs, ts, t_trace, acc, acc_post):
    return _assemble(p, p.kernel(), xs, ts, t_trace, acc, acc_post)


def dlg_checkpointed(key: Array, process, score_fn, shape, *, checkpoint: str | os.PathLike, checkpoint_every: int,
                     resume: bool = True, **dlg_kwargs) -> DLGResult:
    """:func:`probkit.dmcmc.dlg` with its Gibbs sweeps checkpointed every ``checkpoint_every``
    sweeps to ``checkpoint`` (``.npz`` + ``.json``); ``resume=True`` continues from the file.

    ``dlg_kwargs`` are :func:`~probkit.dmcmc.dlg`'s keyword arguments. Resume with the same
    arguments (the recipe and a digest of the initial chains are checked; a difference is named).
    """
    every = _checks.positive_int("checkpoint_every", checkpoint_every)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"`checkpoint` must be a path, got {type(checkpoint).__name__}")
    args = inspect.signature(dlg).bind(key, process, score_fn, shape, **dlg_kwargs)
    args.apply_defaults()
    args.arguments.pop("progress")
    p = _prepare(**args.arguments)
    num_chains, num_samples, burn_in, thin = p.sizes
    num_sweeps = burn_in + num_samples * thin
    keys = _sweep_keys(p.key_run, num_chains, num_sweeps)
    state = _init(p)
    base = _io.base_path(checkpoint)
    recipe = {"key": _io.key_to_json(key), "sizes": list(p.sizes), "x_move": p.x_move.name, "checkpoint_every": every,
              "grid": _io.sha256_arrays([p.grid, p.log_weights]),
              "initial_state": _io.sha256_arrays(jax.tree_util.tree_leaves(state))}
    done, dtype = 0, np.asarray(p.grid).dtype  # traces are sweep-major: (sweeps, chains, ...)
    trace = {"t_trace": np.zeros((0, num_chains), dtype), "acc": np.zeros((0, num_chains), dtype),
             "kept_x": np.zeros((0, *p.x_init.shape), np.asarray(p.x_init).dtype),
             "kept_t": np.zeros((0, num_chains), dtype)}
    if resume and _io.checkpoint_exists(base):
        meta, arrays, used = _io.read_checkpoint(base, DLG_CHECKPOINT_FORMAT, _VERSION)
        _io.check_recipe(meta, recipe, used, "`x_init` (or `key`, the chains' start)")
        done = meta.get("sweep")
        if isinstance(done, bool) or not isinstance(done, int) or not 0 < done <= num_sweeps:
            raise ValueError(f"`checkpoint` {used}.json has an invalid 'sweep' {done!r}")
        state = _io.arrays_to_tree(jax.eval_shape(lambda: state), arrays, "state", f"`checkpoint` {used}.npz")
        for name in trace:
            if name not in arrays:
                raise ValueError(f"`checkpoint` {used}.npz lacks the array {name!r}")
            trace[name] = np.asarray(arrays[name])
    sweeps = np.arange(num_sweeps)
    kept = (sweeps >= burn_in) & ((sweeps - burn_in) % thin == thin - 1)
    while done < num_sweeps:
        m = min(every, num_sweeps - done)
        new_state, (x, t, acc, bad) = _chunk(p, state, keys[done:done + m])
        _check_flags(np.pad(np.asarray(bad), ((done, 0), (0, 0))), np.zeros(1, bool), p.x_move.name, burn_in)
        k = kept[done:done + m]
        new = {"t_trace": t, "acc": acc, "kept_x": np.asarray(x)[k], "kept_t": np.asarray(t)[k]}
        trace = {name: np.concatenate([trace[name], np.asarray(v)]) for name, v in new.items()}
        state, done = new_state, done + m
        meta = {"format": DLG_CHECKPOINT_FORMAT, "version": _VERSION, "sweep": done, "num_sweeps": num_sweeps,
                "recipe": recipe}
        _io.write_files(base, {**_io.tree_to_arrays(state, "state"), **trace}, meta, keep_previous=True)
    acc = trace["acc"]
    out, denoise_bad = _finish(p, jnp.asarray(np.swapaxes(trace["kept_x"], 0, 1)), jnp.asarray(trace["kept_t"].T),
                               jnp.asarray(trace["t_trace"].T), jnp.asarray(acc[kept].T), jnp.asarray(acc[burn_in:]))
    _check_flags(np.zeros((1, num_chains), bool), denoise_bad, p.x_move.name, burn_in, out)
    return out
