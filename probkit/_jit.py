"""The jit of probkit's sampler programs: ``equinox.filter_jit`` / ``jax.jit`` with one set of
XLA compiler options.

XLA:GPU's Triton GEMM emitter autotunes every matrix product of a program while compiling it.
In probkit's samplers the products are small and many (mixture scores as GEMMs over the
particles, score networks), and that tuning was most of the compile: the d = 800 inverse problem
of ``benchmarks/compile.py`` on an H200 compiled in 11.5 s with it and 2.7 s without, and the
compiled programs ran equally fast (cuBLAS). So sampler programs compile with
``xla_gpu_enable_triton_gemm=False``. The option does nothing on CPU; set the environment variable
``PROBKIT_TRITON_GEMM=1`` before importing probkit to compile with Triton GEMMs again. Inside a
user's own ``jax.jit`` (JAX allows options only at the top level) the outer jit's options apply:
``jax.jit(f, compiler_options=probkit._jit.COMPILER_OPTIONS)`` keeps them.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable

import equinox as eqx
import jax

from probkit._checks import is_traced

COMPILER_OPTIONS: dict = ({} if os.environ.get("PROBKIT_TRITON_GEMM") == "1"
                          else {"xla_gpu_enable_triton_gemm": False})


def _with_options(top: Callable, nested: Callable) -> Callable:
    """Call ``top`` (compiled with the options) at top level and ``nested`` under a trace: JAX
    refuses compiler options on a jit nested in a user's ``jax.jit`` (tracers among the arguments)."""
    if not COMPILER_OPTIONS:
        return nested

    @functools.wraps(nested)
    def call(*args, **kwargs):
        return (nested if is_traced(args, kwargs) else top)(*args, **kwargs)

    call.lower = top.lower
    return call


def filter_jit(fun: Callable) -> Callable:
    """``equinox.filter_jit(fun)`` (arrays traced, everything else static) with probkit's options."""
    return _with_options(eqx.filter_jit(fun, compiler_options=COMPILER_OPTIONS), eqx.filter_jit(fun))


def jit(fun: Callable, **kwargs) -> Callable:
    """``jax.jit(fun, **kwargs)`` with probkit's compiler options."""
    return _with_options(jax.jit(fun, compiler_options=COMPILER_OPTIONS, **kwargs), jax.jit(fun, **kwargs))
