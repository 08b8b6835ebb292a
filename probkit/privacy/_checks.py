"""Argument checks and float64 reference helpers shared by the privacy modules (private module).

Every public privacy function validates its arguments here, at the API boundary, and raises a
``ValueError`` naming the argument. Checks run on concrete values only (traced values pass), so
the pure ``jax.numpy`` functions stay jit/vmap-safe.
"""
from __future__ import annotations

import jax
import numpy as np

__all__ = [
    "is_concrete",
    "check_open_unit",
    "check_closed_unit",
    "check_nonnegative",
    "check_delta",
    "check_level",
    "check_counts",
    "check_positive_int",
    "check_scores_labels",
    "eps64_one_sided",
]


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_open_unit(name: str, x) -> None:
    """Raise ValueError unless every entry of concrete ``x`` is finite and in (0, 1)."""
    if not is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0.0) or np.any(a >= 1.0):
        raise ValueError(f"{name} must lie in the open interval (0, 1); got {x!r}")


def check_closed_unit(name: str, x) -> None:
    if not is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0.0) or np.any(a > 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {x!r}")


def check_nonnegative(name: str, x, strict: bool = False) -> None:
    if not is_concrete(x):
        return
    a = np.asarray(x, dtype=float)
    bad = (a <= 0.0) if strict else (a < 0.0)
    if not np.all(np.isfinite(a)) or np.any(bad):
        kind = "positive" if strict else "non-negative"
        raise ValueError(f"{name} must be finite and {kind}; got {x!r}")


def check_delta(delta, allow_zero: bool = True, name: str = "delta") -> None:
    """delta in [0, 1) (pure DP, delta = 0, allowed unless ``allow_zero=False``)."""
    if not is_concrete(delta):
        return
    a = np.asarray(delta, dtype=float)
    lo_ok = (a >= 0.0) if allow_zero else (a > 0.0)
    if not np.all(np.isfinite(a)) or not np.all(lo_ok) or np.any(a >= 1.0):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}; got {delta!r}")


def check_level(level, name: str = "level") -> None:
    check_open_unit(name, level)


def _is_count(v) -> bool:
    a = np.asarray(v)
    if a.ndim != 0 or a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        return False
    f = float(a)
    return bool(np.isfinite(f) and f >= 0 and f == np.floor(f))


def check_counts(fp, n_negative, fn, n_positive) -> tuple[int, int, int, int]:
    """Validate attack outcome counts (concrete non-negative integers, NumPy/JAX scalars
    accepted) and return them as Python ints; name the offending argument."""
    for name, v in (("fp", fp), ("n_negative", n_negative), ("fn", fn), ("n_positive", n_positive)):
        if np.ndim(v) != 0:
            raise ValueError(f"{name} must be a scalar count; got shape {np.shape(v)}")
        if not _is_count(v):
            raise ValueError(f"{name} must be a non-negative integer count; got {v!r}")
    fp, n_negative, fn, n_positive = (int(np.asarray(v)) for v in (fp, n_negative, fn, n_positive))
    if n_negative <= 0:
        raise ValueError(f"n_negative must be positive; got {n_negative!r}")
    if n_positive <= 0:
        raise ValueError(f"n_positive must be positive; got {n_positive!r}")
    if fp > n_negative:
        raise ValueError(f"fp={fp!r} exceeds n_negative={n_negative!r}")
    if fn > n_positive:
        raise ValueError(f"fn={fn!r} exceeds n_positive={n_positive!r}")
    return fp, n_negative, fn, n_positive


def check_positive_int(name: str, n) -> int:
    """A positive integer (Python, NumPy or JAX integer scalar); returns it as an int."""
    a = np.asarray(n) if is_concrete(n) else None
    if a is None or isinstance(n, bool) or a.ndim != 0 or not np.issubdtype(a.dtype, np.integer) or int(a) <= 0:
        raise ValueError(f"{name} must be a positive integer; got {n!r}")
    return int(a)


def check_scores_labels(scores, labels, scores_name: str = "scores", labels_name: str = "labels"):
    """1-D finite float scores and 0/1 labels of equal length, both classes present.

    Returns ``(scores float64, labels bool)`` as NumPy arrays."""
    s = np.asarray(scores)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{scores_name} must be a non-empty 1-D array; got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"{scores_name} must be real numbers; got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{scores_name} must be finite; {int(np.sum(~np.isfinite(s)))} entries are NaN or infinite")
    lab = np.asarray(labels)
    if lab.shape != s.shape:
        raise ValueError(f"{labels_name} must have the shape of {scores_name} {s.shape}; got {lab.shape}")
    if lab.dtype != bool:
        if not np.issubdtype(lab.dtype, np.number):
            raise ValueError(f"{labels_name} must be 0/1; got dtype {lab.dtype}")
        bad = ~np.isin(lab, (0, 1))
        if np.any(bad):
            raise ValueError(f"{labels_name} must be 0 (non-member) or 1 (member); got values "
                             f"{np.unique(lab[bad])[:5].tolist()}")
        lab = lab.astype(bool)
    if lab.all() or (~lab).all():
        which = "non-members (label 0)" if lab.all() else "members (label 1)"
        raise ValueError(f"{labels_name} has no {which}: both classes are needed")
    return s, lab


def eps64_one_sided(fpr, fnr, delta) -> np.ndarray:
    """``max(log((1 - delta - fpr) / fnr), log((1 - delta - fnr) / fpr), 0)`` in float64 NumPy,
    unvalidated and broadcasting: the lower-left half of the privacy region."""
    a, b = np.asarray(fpr, np.float64), np.asarray(fnr, np.float64)
    d = np.asarray(delta, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = np.where(1 - d - a > 0, np.log(np.maximum(1 - d - a, 1e-300)) - np.log(b), -np.inf)
        s2 = np.where(1 - d - b > 0, np.log(np.maximum(1 - d - b, 1e-300)) - np.log(a), -np.inf)
    return np.maximum(np.maximum(s1, s2), 0.0)
