"""Argument checks and float64 reference helpers shared by the privacy modules (private module).

Every public privacy function validates its arguments here, at the API boundary, and raises a
``ValueError`` naming the argument. Checks run on concrete values only (traced values pass), so
the pure ``jax.numpy`` functions stay jit/vmap-safe.
"""
from __future__ import annotations

import numpy as np

from probkit._checks import is_traced

__all__ = [
    "check_closed_unit", "check_nonnegative", "check_delta", "check_level",
    "check_counts", "check_positive_int", "check_scores_labels", "check_binary", "check_both_classes", "eps_one_sided",
    "eps64_one_sided",
]


def _check_interval(name: str, x, low: float, high: float, low_open: bool, high_open: bool, what: str) -> None:
    """Raise ValueError (``{name} must {what}; got x``) unless every entry of concrete ``x`` is
    finite and in the interval."""
    if is_traced(x):
        return
    a = np.asarray(x, dtype=float)
    low_bad = (a <= low) if low_open else (a < low)
    high_bad = (a >= high) if high_open else (a > high)
    if not np.all(np.isfinite(a)) or np.any(low_bad) or np.any(high_bad):
        raise ValueError(f"{name} must {what}; got {x!r}")


def check_closed_unit(name: str, x) -> None:
    _check_interval(name, x, 0.0, 1.0, False, False, "be a probability in [0, 1]")


def check_nonnegative(name: str, x, strict: bool = False) -> None:
    _check_interval(name, x, 0.0, np.inf, strict, False, f"be finite and {'positive' if strict else 'non-negative'}")


def check_delta(delta, allow_zero: bool = True, name: str = "delta") -> None:
    """delta in [0, 1) (pure DP, delta = 0, allowed unless ``allow_zero=False``)."""
    _check_interval(name, delta, 0.0, 1.0, not allow_zero, True, f"lie in {'[0, 1)' if allow_zero else '(0, 1)'}")


def check_level(level, name: str = "level") -> None:
    """Raise ValueError unless every entry of concrete ``level`` is finite and in (0, 1)."""
    _check_interval(name, level, 0.0, 1.0, True, True, "lie in the open interval (0, 1)")


def check_counts(fp, n_negative, fn, n_positive) -> tuple[int, int, int, int]:
    """Validate attack outcome counts (concrete non-negative integers, NumPy/JAX scalars
    accepted) and return them as Python ints; name the offending argument."""
    for name, v in (("fp", fp), ("n_negative", n_negative), ("fn", fn), ("n_positive", n_positive)):
        a = np.asarray(v)
        if a.ndim != 0:
            raise ValueError(f"{name} must be a scalar count; got shape {a.shape}")
        f = float(a) if a.dtype != bool and np.issubdtype(a.dtype, np.number) else -1.0
        if not (np.isfinite(f) and f >= 0 and f == np.floor(f)):
            raise ValueError(f"{name} must be a non-negative integer count; got {v!r}")
    fp, n_negative, fn, n_positive = (int(np.asarray(v)) for v in (fp, n_negative, fn, n_positive))
    for k, n, k_name, n_name in ((fp, n_negative, "fp", "n_negative"), (fn, n_positive, "fn", "n_positive")):
        if n <= 0:
            raise ValueError(f"{n_name} must be positive; got {n!r}")
        if k > n:
            raise ValueError(f"{k_name}={k!r} exceeds {n_name}={n!r}")
    return fp, n_negative, fn, n_positive


def check_positive_int(name: str, n) -> int:
    """A positive integer (Python, NumPy or JAX integer scalar); returns it as an int."""
    a = None if is_traced(n) else np.asarray(n)
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
    lab = check_binary(labels_name, labels, s.shape)
    check_both_classes(lab, labels_name)
    return s, lab


def check_binary(name: str, v, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A non-empty 1-D array of 0/1 (or bool) values, of ``shape`` when given; returned as bool."""
    a = np.asarray(v)
    if a.ndim != 1 or a.size == 0 or (shape is not None and a.shape != shape):
        raise ValueError(f"{name} must be a non-empty 1-D array{'' if shape is None else f' of shape {shape}'}; "
                         f"got shape {a.shape}")
    if a.dtype != bool:
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be 0/1; got dtype {a.dtype}")
        bad = ~np.isin(a, (0, 1))
        if np.any(bad):
            raise ValueError(f"{name} must contain only 0 and 1; got values {np.unique(a[bad])[:5].tolist()}")
    return a.astype(bool)


def check_both_classes(labels: np.ndarray, name: str = "labels") -> None:
    """Membership labels (bool, True = member) with both classes present."""
    if labels.all() or (~labels).all():
        which = "non-members (label 0)" if labels.all() else "members (label 1)"
        raise ValueError(f"{name} has no {which}: both classes are needed")


def eps_one_sided(fpr, fnr, delta, xp=np):
    """``max(log((1 - delta - fpr) / fnr), log((1 - delta - fnr) / fpr), 0)``, the lower-left half
    of the privacy region, unvalidated and broadcasting, in ``xp`` (``numpy`` or ``jax.numpy``);
    a zero rate with a positive numerator gives ``inf`` (safe logs: no NaN, finite gradients)."""

    def side(num_rate, den_rate):
        num = 1.0 - delta - num_rate
        val = xp.log(xp.where(num > 0, num, 1.0)) - xp.log(xp.where(den_rate > 0, den_rate, 1.0))
        return xp.where(num > 0, xp.where(den_rate > 0, val, xp.inf), -xp.inf)

    return xp.maximum(xp.maximum(side(fpr, fnr), side(fnr, fpr)), 0.0)


def eps64_one_sided(fpr, fnr, delta) -> np.ndarray:
    """:func:`eps_one_sided` in float64 NumPy (the reference values of the frequentist bounds)."""
    return eps_one_sided(*(np.asarray(v, np.float64) for v in (fpr, fnr, delta)))
