"""Opt-in progress bars for scan-based samplers, through a host callback every few steps.

:func:`progress_scan` is a drop-in for :func:`jax.lax.scan`: with ``enabled=False`` (the default)
it *is* ``jax.lax.scan`` (same program, nothing added); with ``enabled=True`` the body also
reports the number of finished steps to the host every ``every`` steps and after the last one,
through :func:`jax.debug.callback`, where a ``tqdm`` bar (or your ``on_update``) shows it. It
works under ``jax.jit`` (the bar is opened by the first report of each run, so a compiled
function shows a fresh bar every call) and under ``jax.grad``.

**Silent under vmap.** The report goes through a :func:`jax.custom_batching.custom_vmap`
function whose batching rule drops it, probed with the carry and the scanned inputs: when the
scan runs inside ``jax.vmap`` over anything that reaches its carry or inputs, nothing is printed
(one bar per batch element, or interleaved bars, would be noise). Only the step counter and the
stop-gradient of the probe enter the callback, so enabling progress changes no result.

Why not ``jax-tqdm`` (PyPI): its ``scan_tqdm`` needs the scanned inputs to start with the
iteration index (not a drop-in for ``lax.scan``), opens one bar per batch element under ``vmap``
and adds ``chex``; the host side here is the same idea.
"""
from __future__ import annotations

import itertools
import math
import sys
import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks

__all__ = ["progress_scan", "report_steps"]

OnUpdate = Callable[[int, int], None]


def report_steps(length: int, every: int | None = None) -> list[int]:
    """The finished-step counts at which :func:`progress_scan` reports: every ``every``-th step
    and the last one (``every`` defaults to ``ceil(length / 20)``, about 20 reports a run)."""
    every = _every(length, every)
    return sorted(set(range(every, length + 1, every)) | ({length} if length > 0 else set()))


def _every(length: int, every: int | None) -> int:
    if every is None:
        return max(1, math.ceil(length / 20))
    return _checks.positive_int("every", every)


class _HostBar:
    """Host-side state of one ``progress_scan`` call site: a tqdm bar per run."""

    def __init__(self, total: int, desc: str, on_update: OnUpdate | None):
        self.total, self.desc, self.on_update = total, desc, on_update
        self.bar, self.last, self.lock = None, 0, threading.Lock()

    def __call__(self, done) -> None:
        done = int(done)
        with self.lock:
            if self.on_update is not None:
                self.on_update(done, self.total)
                return
            if self.bar is None or done <= self.last:  # a new run of the (compiled) scan
                self._close()
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, desc=self.desc or None, file=sys.stderr, leave=True,
                                dynamic_ncols=True)
                self.last = 0
            self.bar.update(done - self.last)
            self.last = done
            if done >= self.total:
                self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _make_reporter(host: _HostBar) -> Callable[[Array, Any], Array]:
    @jax.custom_batching.custom_vmap
    def report(done, probe):
        jax.debug.callback(host, done)
        return done

    @report.def_vmap
    def _silent_under_vmap(axis_size, in_batched, done, probe):  # noqa: ARG001 - custom_vmap's signature
        return done, in_batched[0]

    return report


Array = jax.Array
_ids = itertools.count()


def progress_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    *,
    enabled: bool = False,
    desc: str = "",
    every: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    on_update: OnUpdate | None = None,
) -> tuple[Any, Any]:
    """``jax.lax.scan(f, init, xs, length)`` with an optional progress bar.

    Args:
      f, init, xs, length, reverse, unroll: as in :func:`jax.lax.scan`.
      enabled: show progress (default ``False``: exactly ``jax.lax.scan``).
      desc: the bar's label.
      every: report every ``every`` finished steps (and after the last); default
        ``ceil(length / 20)``. See :func:`report_steps`.
      on_update: host function ``(done, total) -> None`` called at each report instead of the
        ``tqdm`` bar (logging, tests).

    Returns:
      ``(final_carry, stacked_ys)``, identical to ``jax.lax.scan``'s. Nothing is reported when
      the scan runs under ``jax.vmap`` over its carry or inputs.
    """
    if not enabled:
        return jax.lax.scan(f, init, xs, length, reverse=reverse, unroll=unroll)
    leaves = jax.tree.leaves(xs)  # the number of steps (jax.lax.scan checks that xs and length agree)
    if length is None and not leaves:
        raise ValueError("`length` is required when `xs` is None (or has no leaves)")
    if length is None and np.ndim(leaves[0]) == 0:
        raise ValueError("`xs` leaves must have a leading axis to scan over")
    n = int(np.shape(leaves[0])[0]) if length is None else _checks.positive_int("length", length, minimum=0)
    step = _every(n, every)
    if n == 0:
        return jax.lax.scan(f, init, xs, length, reverse=reverse, unroll=unroll)
    report = _make_reporter(_HostBar(n, desc or f"scan {next(_ids)}", on_update))
    counter = jnp.arange(n, dtype=jnp.int32)
    if reverse:
        counter = counter[::-1]

    def body(carry, inp):
        x, i = inp
        done = i + 1
        probe = jax.lax.stop_gradient((carry, x))
        jax.lax.cond((done % step == 0) | (done == n), lambda: report(done, probe), lambda: done)
        return f(carry, x)

    return jax.lax.scan(body, init, (xs, counter), n, reverse=reverse, unroll=unroll)
