"""The jit of probkit's sampler entry points: ``equinox.filter_jit``, compiled without Triton GEMM
autotuning when the program evaluates a closed-form model that asks for it.

XLA:GPU's Triton GEMM emitter autotunes every matrix product of a program while compiling it.
A Gaussian mixture's score and log density are many small GEMMs over the particles (K
components), and that tuning was most of their compile: the d = 800 inverse problem of
``benchmarks/compile.py`` on an H200 took 11.2 s to its first result with it and 3.6 s without,
and the compiled program ran equally fast (cuBLAS). Score *networks* run faster with Triton's
fused GEMMs (the LJ-13 EGNN sampler: 2.45 s with, 2.79 s without, per 500-step run), so the
option is not global: a model function marked with :func:`fast_compile` (the mixture's, in
``probkit.models.gmm``), passed as a ``jax.tree_util.Partial`` anywhere in a sampler's arguments,
selects ``FAST_COMPILE_OPTIONS`` for that call's program. The option does nothing on CPU. The
environment variable ``PROBKIT_TRITON_GEMM=1`` (read at import) turns the selection off. Inside a
user's own ``jax.jit`` the outer jit's options apply (JAX takes options only at the top level):
``jax.jit(f, compiler_options=probkit._jit.FAST_COMPILE_OPTIONS)``.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable

import equinox as eqx
import jax
from jax.tree_util import Partial

from probkit._checks import is_traced

FAST_COMPILE_OPTIONS: dict = {"xla_gpu_enable_triton_gemm": False}
_ENABLED = os.environ.get("PROBKIT_TRITON_GEMM") != "1"
_FAST: set = set()


def fast_compile(fun: Callable) -> Callable:
    """Mark ``fun`` (the function of a ``Partial`` score / log density) as compiling faster, at
    the same run time, without Triton GEMM autotuning; returns ``fun``."""
    _FAST.add(fun)
    return fun


def wants_fast_compile(*trees) -> bool:
    """Whether a ``Partial`` of a :func:`fast_compile` function is among the leaves of ``trees``."""
    leaves = jax.tree.leaves(trees, is_leaf=lambda x: isinstance(x, Partial))
    return _ENABLED and any(isinstance(leaf, Partial) and leaf.func in _FAST for leaf in leaves)


def filter_jit(fun: Callable) -> Callable:
    """``equinox.filter_jit(fun)`` (arrays traced, everything else static), with
    ``FAST_COMPILE_OPTIONS`` for calls whose arguments hold a :func:`fast_compile` model."""
    plain, fast = eqx.filter_jit(fun), eqx.filter_jit(fun, compiler_options=FAST_COMPILE_OPTIONS)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        use_fast = not is_traced(args, kwargs) and wants_fast_compile(args, kwargs)
        return (fast if use_fast else plain)(*args, **kwargs)

    call.lower = plain.lower
    return call
