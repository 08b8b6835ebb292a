"""Argument checks of the score-network modules: :mod:`probkit._checks`, plus strings refused
(``"0.5"`` is not a number here) and half-open intervals."""
from __future__ import annotations

import math
from typing import Any

from probkit import _checks


def _no_str(name: str, value: Any) -> None:
    if isinstance(value, (str, bytes)):
        raise ValueError(f"`{name}` must be a number, got the string {value!r}")


check_pos_int = _checks.positive_int  # ``value`` as an int if a positive integer (NumPy integers accepted)


def check_pos_float(name: str, value: Any) -> float:
    """``value`` as a float if it is a positive finite real (NumPy/JAX scalars accepted), else ValueError."""
    _no_str(name, value)
    return _checks.scalar(name, value, low=0.0, low_open=True)


def check_real(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real scalar in the interval, else ValueError."""
    _no_str(name, value)
    v = _checks.scalar(name, value, low=None if low == -math.inf else low, high=None if high == math.inf else high,
                       low_open=low_open)
    if high_open and v >= high:
        raise ValueError(f"`{name}` must be < {high}, got {value!r}")
    return v
