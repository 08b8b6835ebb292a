"""Argument checks shared by the score-network modules (private)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_pos_int(name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer (NumPy integers accepted), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def check_pos_float(name: str, value: Any) -> float:
    """``value`` as a float if it is a positive finite real (NumPy/JAX scalars accepted), else ValueError."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    try:
        arr = np.asarray(value)
        ok = arr.ndim == 0 and arr.dtype.kind in "iuf"
        v = float(arr) if ok else math.nan
    except (TypeError, ValueError):
        ok, v = False, math.nan
    if not (ok and math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return v


def check_real(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a real scalar in the given interval, else ValueError."""
    ok = not isinstance(value, (bool, np.bool_))
    v = math.nan
    if ok:
        try:
            arr = np.asarray(value)
            ok = arr.ndim == 0 and arr.dtype.kind in "iuf"
            v = float(arr) if ok else math.nan
        except (TypeError, ValueError):
            ok = False
    ok = ok and math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"`{name}` must be a real number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v
