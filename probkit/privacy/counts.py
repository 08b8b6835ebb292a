"""Audit outcome counts: :class:`AuditCounts`, built from guesses/labels or scores, with JSON I/O.

An audit runs a membership test ``n_negative`` times on non-members (label 0; a "member" guess
is a false positive) and ``n_positive`` times on members (label 1; a "non-member" guess is a
false negative). Every count-based function of :mod:`probkit.privacy` (``epsilon_posterior``,
``clopper_pearson_epsilon``, ``epsilon_lower_bound``, ...) accepts an :class:`AuditCounts` in
place of its four count arguments.
"""
from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from probkit.privacy._checks import check_binary, check_both_classes, check_counts, check_delta, check_scores_labels

__all__ = ["AuditCounts", "counts_from_scores", "resolve_counts"]


class AuditCounts(NamedTuple):
    """Outcome counts of an audit (scalars for one audit, arrays of a common shape for many).

    ``fp`` false positives among ``n_negative`` non-member trials, ``fn`` false negatives among
    ``n_positive`` member trials. A pytree (NamedTuple), so it passes through ``jax.vmap``.
    """

    fp: Any
    n_negative: Any
    fn: Any
    n_positive: Any

    # -- derived quantities
    @property
    def tn(self):
        return self.n_negative - self.fp

    @property
    def tp(self):
        return self.n_positive - self.fn

    @property
    def fpr(self):
        """Observed false-positive rate ``fp / n_negative``."""
        return np.asarray(self.fp) / np.asarray(self.n_negative)

    @property
    def fnr(self):
        """Observed false-negative rate ``fn / n_positive``."""
        return np.asarray(self.fn) / np.asarray(self.n_positive)

    def flipped(self) -> "AuditCounts":
        """Counts of the flipped attack (every guess negated): ``fp -> tn``, ``fn -> tp``, so
        (FPR, FNR) -> (1 - FPR, 1 - FNR). Flipping is post-processing: it implies the same eps."""
        return AuditCounts(self.tn, self.n_negative, self.tp, self.n_positive)

    def validate(self) -> "AuditCounts":
        """Check one audit's counts (ValueError naming the field) and return Python ints."""
        return AuditCounts(*check_counts(*self))

    # -- constructors
    @classmethod
    def from_guesses(cls, guesses, labels) -> "AuditCounts":
        """Counts from 0/1 (or bool) ``guesses`` (1 = "member") and ``labels`` (1 = member)."""
        lab = check_binary("labels", labels)
        g = check_binary("guesses", guesses, lab.shape)
        check_both_classes(lab)
        return cls(int(np.sum(g & ~lab)), int(np.sum(~lab)), int(np.sum(~g & lab)), int(np.sum(lab)))

    @classmethod
    def from_scores(cls, scores, labels, threshold: float) -> "AuditCounts":
        """Counts of the test "member iff score > threshold" on scores with 0/1 labels."""
        s, lab = check_scores_labels(scores, labels)
        return cls.from_guesses(s > float(threshold), lab)

    # -- JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (ints, or nested lists for arrays)."""
        return {k: np.asarray(v).astype(np.int64).tolist() for k, v in self._asdict().items()}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """JSON text ``{"fp": .., "n_negative": .., "fn": .., "n_positive": ..}``; also written
        to ``path`` when given."""
        text = json.dumps(self.to_dict())
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditCounts":
        if not isinstance(d, dict):
            raise ValueError(f"audit counts must be a JSON object; got {type(d).__name__}")
        missing = [k for k in cls._fields if k not in d]
        if missing:
            raise ValueError(f"audit counts JSON lacks {', '.join(missing)}")
        extra = sorted(set(d) - set(cls._fields))
        if extra:
            raise ValueError(f"audit counts JSON has unknown fields {extra}")
        vals = [np.asarray(d[k]) for k in cls._fields]
        if all(v.ndim == 0 for v in vals):
            return cls(*check_counts(*(d[k] for k in cls._fields)))
        for k, v in zip(cls._fields, vals):
            if not np.issubdtype(v.dtype, np.integer) or np.any(v < 0):
                raise ValueError(f"{k} must hold non-negative integer counts")
        return cls(*vals)

    @classmethod
    def from_json(cls, text: str) -> "AuditCounts":
        """Inverse of :meth:`to_json` (the JSON text; use :meth:`load` for a file)."""
        try:
            d = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"text is not valid JSON audit counts: {err}") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AuditCounts":
        """Read counts written by ``to_json(path)``."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ValueError(f"cannot read audit counts from {str(path)!r}: {err.strerror}") from None
        try:
            return cls.from_json(text)
        except ValueError as err:
            raise ValueError(f"{str(path)!r}: {err}") from None


def counts_from_scores(neg_scores, pos_scores, threshold) -> AuditCounts:
    """Counts of the test "member iff score > threshold" from separate non-member and member
    scores (broadcasts over leading axes and over ``threshold``; jit-safe)."""
    neg, pos = jnp.asarray(neg_scores), jnp.asarray(pos_scores)
    return AuditCounts(jnp.sum(neg > threshold, -1), neg.shape[-1], jnp.sum(pos <= threshold, -1), pos.shape[-1])


def resolve_counts(fp, n_negative, fn, n_positive, delta, *, need_delta: bool = True):
    """Accept either four counts or an :class:`AuditCounts` in ``fp``'s place.

    ``f(counts, delta)`` puts delta in ``n_negative``'s slot; ``f(counts, delta=...)`` leaves the
    other slots empty. Returns ``((fp, n_negative, fn, n_positive) as validated ints, delta)``, the
    delta checked to lie in [0, 1) when ``need_delta``.
    """
    if isinstance(fp, AuditCounts):
        counts = fp
        rest = [v for v in (n_negative, fn, n_positive) if v is not None]
        if need_delta and delta is None and n_negative is not None and fn is None and n_positive is None:
            delta, rest = n_negative, []
        if rest:
            raise ValueError("pass either an AuditCounts or the four counts (fp, n_negative, fn, n_positive), "
                             "not both")
        fp, n_negative, fn, n_positive = counts
    elif any(v is None for v in (n_negative, fn, n_positive)):
        raise ValueError("n_negative, fn and n_positive are required unless fp is an AuditCounts")
    if need_delta:
        if delta is None:
            raise ValueError("delta is required")
        check_delta(delta)
    return check_counts(fp, n_negative, fn, n_positive), delta
