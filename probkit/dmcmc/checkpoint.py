r"""Checkpoint and resume DLG chains (:func:`probkit.dmcmc.dlg`): the Gibbs sweeps in chunks.

:func:`dlg_checkpointed` runs the chains of :func:`~probkit.dmcmc.dlg` (same arguments, same
validation) as a sequence of jitted ``lax.scan`` chunks of ``checkpoint_every`` sweeps, then the
denoising pass. After each chunk it writes, as :mod:`probkit.smc.checkpoint` does,

* ``<path>.npz``: the chain states (``x``, grid index, ``t``), the per-sweep noise levels and
  acceptances so far and the kept draws so far;
* ``<path>.json``: format and version, the sweep index, the recipe (key, sizes, a digest of the
  initial chain states) and the SHA-256 of the ``.npz``;

no pickle, each file written atomically, the previous pair kept as ``<path>.prev.*``. Calling it
again with the same arguments resumes from the file. Key schedule: the sweep keys of chain c are
those of :func:`~probkit.dmcmc.dlg` (``split(key_run, C)[c]`` into burn-in and kept sweeps),
fixed whatever the chunking, so a resumed run equals the uninterrupted run **bitwise**.
Non-finite chain states are flagged inside the scan and raised (naming the sweep) after the
chunk that contains them; that chunk is not checkpointed.
"""
from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from probkit import _io
from probkit.dmcmc.dlg import DLGResult, _assemble, _check_acceptance, _check_flags, build_kernel, dlg

Array = jax.Array

__all__ = ["dlg_checkpointed", "read_dlg_checkpoint_metadata", "DLG_CHECKPOINT_FORMAT"]

DLG_CHECKPOINT_FORMAT = "probkit.dlg_checkpoint"
_VERSION = 1


def read_dlg_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON side-car of a DLG checkpoint (``sweep``, ``num_sweeps``, ``recipe``, ...)."""
    return _io.read_json(path, DLG_CHECKPOINT_FORMAT, _VERSION)


def _sweep_keys(key_run, num_chains, num_samples, burn_in, thin):
    """``(C, burn_in + num_samples * thin)`` sweep keys, exactly those :func:`dlg` uses."""

    def one(kc):
        k_burn, k_keep = jax.random.split(kc)
        burn = jax.random.split(k_burn, burn_in)
        keep = jax.vmap(lambda k: jax.random.split(k, thin))(jax.random.split(k_keep, num_samples))
        return jnp.concatenate([burn, keep.reshape(num_samples * thin, *keep.shape[2:])])

    return jax.vmap(one)(jax.random.split(key_run, num_chains))


@eqx.filter_jit
def _init(x_init, t_init, process, score_fn, grid, log_w, kernel_options):
    kernel = build_kernel(process, score_fn, grid, log_w, **kernel_options)
    return jax.vmap(lambda x: kernel.init(x, t_init))(x_init)


@eqx.filter_jit
def _chunk(state, keys, process, score_fn, grid, log_w, kernel_options):
    """Sweeps ``keys`` ``(C, m)`` of every chain: final state and per-sweep x, t, acceptance, flag."""
    kernel = build_kernel(process, score_fn, grid, log_w, **kernel_options)

    def chain(st, ks):
        def sweep(s, k):
            s, info = kernel.step(k, s)
            bad = ~(jnp.all(jnp.isfinite(s.x)) & jnp.isfinite(s.t))
            return s, (s.x, s.t, info.acceptance_rate, bad)

        return jax.lax.scan(sweep, st, ks)

    return jax.vmap(chain)(state, keys)


@eqx.filter_jit
def _finish(key_denoise, process, score_fn, grid, log_w, kernel_options, xs, ts, t_trace, acc, acc_post, sizes,
            denoise_options):
    kernel = build_kernel(process, score_fn, grid, log_w, **kernel_options)
    return _assemble(key_denoise, process, score_fn, kernel, xs, ts, t_trace, acc, jnp.mean(acc_post, axis=1), grid,
                     log_w, sizes, denoise_options)


def dlg_checkpointed(key: Array, process, score_fn, shape, *, checkpoint: str | os.PathLike, checkpoint_every: int,
                     resume: bool = True, **dlg_kwargs) -> DLGResult:
    """:func:`probkit.dmcmc.dlg` with its Gibbs sweeps checkpointed every ``checkpoint_every``
    sweeps to ``checkpoint`` (``.npz`` + ``.json``); ``resume=True`` continues from the file.

    ``dlg_kwargs`` are :func:`~probkit.dmcmc.dlg`'s keyword arguments. Resume with the same
    arguments (the recipe and a digest of the initial chains are checked; a difference is named).
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
        raise ValueError(f"`checkpoint_every` must be a positive integer, got {checkpoint_every!r}")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"`checkpoint` must be a path, got {type(checkpoint).__name__}")
    (key_run, key_denoise, x_init, process, score_fn, grid, log_w, t_init, kernel_options, sizes, denoise_options,
     x_move) = dlg(key, process, score_fn, shape, _prepare_only=True, **dlg_kwargs)
    num_chains, num_samples, burn_in, thin = sizes
    num_sweeps = burn_in + num_samples * thin
    keys = _sweep_keys(key_run, num_chains, num_samples, burn_in, thin)
    state = _init(x_init, t_init, process, score_fn, grid, log_w, kernel_options)
    base, every = _io.base_path(checkpoint), int(checkpoint_every)
    recipe = {"key": _io.key_to_json(key), "sizes": list(sizes), "x_move": x_move, "checkpoint_every": every,
              "grid": _io.sha256_arrays([grid, log_w]),
              "initial_state": _io.sha256_arrays(jax.tree_util.tree_leaves(state))}
    done = 0
    trace = {"t_trace": np.zeros((num_chains, 0), np.asarray(grid).dtype),
             "acc": np.zeros((num_chains, 0), np.asarray(grid).dtype),
             "kept_x": np.zeros((num_chains, 0, *x_init.shape[1:]), np.asarray(x_init).dtype),
             "kept_t": np.zeros((num_chains, 0), np.asarray(grid).dtype)}
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
    while done < num_sweeps:
        m = min(every, num_sweeps - done)
        new_state, (x, t, acc, bad) = _chunk(state, keys[:, done:done + m], process, score_fn, grid, log_w,
                                             kernel_options)
        bad = np.asarray(bad)
        if bad.any():  # name the global sweep
            full = np.zeros((num_chains, done + m), bool)
            full[:, done:] = bad
            _check_flags((full, np.zeros(1, bool)), x_move, burn_in, thin)
        idx = np.arange(done, done + m)
        kept = (idx >= burn_in) & ((idx - burn_in) % thin == thin - 1)
        trace = {"t_trace": np.concatenate([trace["t_trace"], np.asarray(t)], axis=1),
                 "acc": np.concatenate([trace["acc"], np.asarray(acc)], axis=1),
                 "kept_x": np.concatenate([trace["kept_x"], np.asarray(x)[:, kept]], axis=1),
                 "kept_t": np.concatenate([trace["kept_t"], np.asarray(t)[:, kept]], axis=1)}
        state, done = new_state, done + m
        arrays = {**_io.tree_to_arrays(state, "state"), **trace}
        meta = {"format": DLG_CHECKPOINT_FORMAT, "version": _VERSION, "sweep": done, "num_sweeps": num_sweeps,
                "recipe": recipe}
        _io.write_files(base, arrays, meta, keep_previous=True)
    acc_all = trace["acc"]
    kept_idx = np.flatnonzero((np.arange(num_sweeps) >= burn_in)
                              & ((np.arange(num_sweeps) - burn_in) % thin == thin - 1))
    out, denoise_bad = _finish(key_denoise, process, score_fn, grid, log_w, kernel_options,
                               jnp.asarray(trace["kept_x"]), jnp.asarray(trace["kept_t"]),
                               jnp.asarray(trace["t_trace"]), jnp.asarray(acc_all[:, kept_idx]),
                               jnp.asarray(acc_all[:, burn_in:]), sizes, denoise_options)
    _check_flags((np.zeros((num_chains, 1), bool), np.asarray(denoise_bad)), x_move, burn_in, thin)
    _check_acceptance(out, x_move)
    return out
