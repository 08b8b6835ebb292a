"""Argument checks shared by the public API (one place, one wording).

Each check raises ``ValueError`` naming the argument. Value checks run only on concrete inputs:
under ``jax.jit`` / ``jax.vmap`` a traced scalar passes through unchanged (the engine's
after-run flags catch non-finite results).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["positive_int", "scalar", "step_size", "shape", "choice", "is_traced", "prng_key"]


def is_traced(*xs: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for x in xs for leaf in jax.tree.leaves(x))


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (Python or NumPy integer; ``bool`` rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}, got {value!r}")
    return int(value)


def scalar(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, as_array: bool = False):
    """A finite real scalar (Python, NumPy or JAX; not a string) in [low, high] (``low_open`` /
    ``high_open``: that end excluded).

    Returns a Python float when concrete (a JAX array when ``as_array``); a traced value is
    returned as is."""
    if is_traced(value):
        if jnp.ndim(value) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(value)}")
        return value
    if isinstance(value, (str, bytes)):
        raise ValueError(f"`{name}` must be a number, got the string {value!r}")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    try:
        v = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}") from None
    if v.ndim != 0 or not math.isfinite(float(v)):
        raise ValueError(f"`{name}` must be a finite scalar, got {value!r}")
    v = float(v)
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"`{name}` must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v >= high if high_open else v > high):
        raise ValueError(f"`{name}` must be {'<' if high_open else '<='} {high}, got {value!r}")
    return jnp.asarray(v, jnp.result_type(float)) if as_array else v


def step_size(value: Any, name: str = "step_size") -> None:
    """A positive finite step, or a callable ``t -> step``."""
    if callable(value):
        return
    try:
        scalar(name, value, low=0.0, low_open=True)
    except ValueError:
        raise ValueError(f"`{name}` must be a positive finite number or a callable t -> step, got {value!r}") from None


def shape(name: str, value: Any) -> tuple[int, ...]:
    """A non-empty tuple of positive integers."""
    if value is None:
        raise ValueError(f"`{name}` (the event shape of one particle, e.g. (d,)) is required")
    try:
        out = tuple(value)
    except TypeError:
        raise ValueError(f"`{name}` must be a tuple of positive integers, got {value!r}") from None
    if len(out) == 0 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in out):
        raise ValueError(f"`{name}` must be a non-empty tuple of positive integers, got {value!r}")
    return tuple(int(s) for s in out)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"`{name}` must be one of {tuple(options)}, got {value!r}")
    return value


def prng_key(value: Any, name: str = "key") -> None:
    """A single JAX PRNG key: a typed key (``jax.random.key``) or a raw ``uint32`` key of shape
    ``(2,)`` (threefry, ``jax.random.PRNGKey``) or ``(4,)`` (rbg). Checks dtype/shape only, so
    traced keys pass when well-formed."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if jnp.ndim(value) != 0:
            raise ValueError(f"`{name}` must be a single PRNG key, got a batch of shape {jnp.shape(value)}")
        return
    if (dtype is None or isinstance(value, (bool, int, float, str)) or dtype != np.uint32
            or tuple(jnp.shape(value)) not in ((2,), (4,))):
        shown = f"array of dtype {dtype} and shape {tuple(jnp.shape(value))}" if dtype is not None else repr(value)
        raise ValueError(f"`{name}` must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
                         f"got {shown}")
