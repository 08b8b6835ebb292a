"""The 8x8 handwritten digits (scikit-learn's copy of the UCI optdigits test set) as a small
image benchmark, and a score model pretrained on them by ``benchmarks/train_digits.py`` that
ships with probkit: ``make_score_fn(*load_pretrained_digits())`` or
:func:`pretrained_digits_score_fn`.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from probkit.diffusion.schedules import VP
from probkit.models.nets import (Params, ScoreFn, ScoreMLPConfig, TrainResult, load_score_model, make_score_fn,
                                 read_metadata, train_score_model)
from probkit.models.serialization import load_pretrained_file, pretrained_path

Array = jax.Array

__all__ = ["DIGITS_SHAPE", "load_digits_data", "digits_to_images", "train_digits_score_model", "pretrained_digits_path",
           "load_pretrained_digits", "pretrained_digits_score_fn", "pretrained_digits_metadata", "plot_digits"]

DIGITS_SHAPE = (8, 8)
_PIXEL_MAX = 16.0
_PRETRAINED = "digits_vp"


def _check_scale(scale: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(s) for s in scale)
    except (TypeError, ValueError):
        raise ValueError(f"`scale` must be a pair (low, high), got {scale!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"`scale` must be finite with low < high, got {scale!r}")
    return lo, hi


def load_digits_data(scale: tuple[float, float] = (-1.0, 1.0), *, return_labels: bool = False):
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits`` as float32 ``(1797, 64)``.

    Pixel intensities 0..16 are mapped linearly onto ``scale = (low, high)`` (default
    [-1, 1]); images are flattened row-major (reshape to ``(8, 8)`` to view them). With
    ``return_labels=True`` also returns the int labels ``(1797,)``.
    """
    from sklearn.datasets import load_digits

    lo, hi = _check_scale(scale)
    ds = load_digits()
    x = (lo + (hi - lo) * ds.data / _PIXEL_MAX).astype(np.float32)
    return (x, ds.target.astype(np.int32)) if return_labels else x


def digits_to_images(x: ArrayLike, scale: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Map flattened samples ``(n, 64)`` back to images ``(n, 8, 8)`` with intensities in
    [0, 16] (clipped)."""
    lo, hi = _check_scale(scale)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 64:
        raise ValueError(f"`x` must have trailing dimension 64, got shape {x.shape}")
    img = (x - lo) / (hi - lo) * _PIXEL_MAX
    return np.clip(img, 0.0, _PIXEL_MAX).reshape(*x.shape[:-1], *DIGITS_SHAPE)


def train_digits_score_model(key: Array, process=None, num_steps: int = 16_000, batch_size: int = 256,
                             **kwargs: Any) -> TrainResult:
    """Train a score MLP on :func:`load_digits_data` (default process ``VP()``); the keyword
    arguments (``hidden``, ``depth``, ``learning_rate``, ...) and their defaults are those of
    :func:`probkit.models.nets.train_score_model`."""
    return train_score_model(key, load_digits_data(), VP() if process is None else process, num_steps, batch_size,
                             **kwargs)


def pretrained_digits_path() -> str:
    """Base path (without extension) of the shipped ``digits_vp.{npz,json}`` files."""
    return pretrained_path(_PRETRAINED)


def load_pretrained_digits() -> tuple[Params, ScoreMLPConfig, Any]:
    """``(params, config, process)`` of the score model shipped with probkit for the digits.

    A noise-prediction MLP for particles of shape ``(64,)`` in [-1, 1] (pixels of
    :func:`load_digits_data`) under the process stored with it (``VP()``). The training recipe
    and final loss are in ``read_metadata(pretrained_digits_path())["metadata"]``.
    """
    return load_pretrained_file(_PRETRAINED, load_score_model, "pretrained digits model", "benchmarks/train_digits.py")


def pretrained_digits_score_fn() -> tuple[ScoreFn, Any]:
    """``(score_fn, process)`` of the shipped digits model, ready for :func:`probkit.sample`."""
    params, config, process = load_pretrained_digits()
    return make_score_fn(params, config, process), process


def pretrained_digits_metadata() -> dict[str, Any]:
    """The training recipe and results stored with the shipped model."""
    return read_metadata(pretrained_digits_path()).get("metadata", {})


def plot_digits(x: ArrayLike, path: str | None = None, *, ncols: int = 10, title: str | None = None):
    """Grid of digit images from flattened samples ``(n, 64)`` in [-1, 1]; saves to ``path``
    if given and returns the matplotlib figure (matplotlib is imported lazily)."""
    import matplotlib.pyplot as plt

    imgs = digits_to_images(x)
    n = imgs.shape[0]
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.8, nrows * 0.8 + (0.4 if title else 0.0)))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap="gray_r", vmin=0.0, vmax=_PIXEL_MAX, interpolation="nearest")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
