"""Small matplotlib helpers for tutorials and reports.

Each function draws on a given ``matplotlib.axes.Axes`` and returns it; none creates figures,
calls ``pyplot.show`` or picks a backend, so they work headless (``MPLBACKEND=Agg``).
matplotlib is imported lazily. Inputs may be JAX or NumPy arrays.

* :func:`plot_samples_on_density` — 2-D samples (optionally weighted) over the contour lines of
  a target density.
* :func:`plot_hist_1d` — (weighted) histogram with an optional density curve.
* :func:`plot_ess_trace` — ESS history of a particle run, with resampling steps marked.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["plot_samples_on_density", "plot_hist_1d", "plot_ess_trace", "density_grid"]


def _weights_or_none(n: int, weights: Any, log_weights: Any) -> np.ndarray | None:
    from probkit.diagnostics.arviz import _normalised_weights

    if weights is None and log_weights is None:
        return None
    return _normalised_weights(n, log_weights, weights)


def _bounds_from(samples: np.ndarray, pad: float = 0.15) -> tuple[float, float, float, float]:
    lo, hi = np.percentile(samples, 0.5, axis=0), np.percentile(samples, 99.5, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def density_grid(
    log_prob_fn: Callable[[Any], Any],
    bounds: Sequence[float],
    resolution: int = 150,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``exp(log_prob_fn(points))`` on a ``resolution x resolution`` grid.

    Args:
      log_prob_fn: maps an ``(M, 2)`` array of points to ``(M,)`` log densities (unnormalised is
        fine), e.g. ``jax.vmap(gm.log_prob)``.
      bounds: ``(xmin, xmax, ymin, ymax)``.

    Returns:
      ``(X, Y, P)`` meshes, P = density / max density (so contour levels are relative).
    """
    if len(bounds) != 4 or not (bounds[0] < bounds[1] and bounds[2] < bounds[3]):
        raise ValueError(f"`bounds` must be (xmin, xmax, ymin, ymax) with min < max, got {bounds!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"`resolution` must be an integer >= 2, got {resolution!r}")
    xs = np.linspace(bounds[0], bounds[1], resolution)
    ys = np.linspace(bounds[2], bounds[3], resolution)
    X, Y = np.meshgrid(xs, ys)
    pts = np.stack([X.ravel(), Y.ravel()], axis=1).astype(np.float32)
    lp = np.asarray(log_prob_fn(pts), dtype=np.float64).reshape(-1)
    if lp.shape[0] != pts.shape[0]:
        raise ValueError(f"`log_prob_fn` must map (M, 2) points to (M,) values, got {lp.shape[0]} values for M = {pts.shape[0]}")
    finite = np.isfinite(lp)
    if not finite.any():
        raise ValueError("`log_prob_fn` is not finite anywhere on the grid")
    P = np.where(finite, np.exp(lp - lp[finite].max()), 0.0).reshape(X.shape)
    return X, Y, P


def plot_samples_on_density(
    ax: Any,
    samples: Any,
    log_prob_fn: Callable[[Any], Any] | None = None,
    *,
    grid: tuple[Any, Any, Any] | None = None,
    weights: Any = None,
    log_weights: Any = None,
    bounds: Sequence[float] | None = None,
    resolution: int = 150,
    levels: int | Sequence[float] = 8,
    max_points: int = 3000,
    color: str = "C0",
    cmap: str = "Greys",
    size: float = 4.0,
    alpha: float = 0.5,
    title: str | None = None,
    seed: int = 0,
):
    """Scatter 2-D ``samples`` ``(N, 2)`` over contour lines of a target density.

    The density is ``log_prob_fn`` (``(M, 2) -> (M,)`` log density) evaluated on a grid over
    ``bounds`` (default: the samples' 0.5–99.5 percentile box, padded), or a precomputed
    ``grid = (X, Y, P)`` (see :func:`density_grid`). With ``weights`` / ``log_weights`` the marker
    area is proportional to ``N w_i`` (equal weights give ``size``) and points are drawn in order
    of increasing weight; at most ``max_points`` points are drawn (a random subset, fixed ``seed``;
    weighted samples keep the heaviest ones).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"`samples` must be shaped (N, 2), got {x.shape}")
    if log_prob_fn is not None and grid is not None:
        raise ValueError("give either `log_prob_fn` or `grid`, not both")
    w = _weights_or_none(x.shape[0], weights, log_weights)
    if grid is not None:
        if len(grid) != 3:
            raise ValueError("`grid` must be a tuple (X, Y, P) of equal-shape 2-D arrays")
        X, Y, P = (np.asarray(g) for g in grid)
        if not (X.shape == Y.shape == P.shape and X.ndim == 2):
            raise ValueError(f"`grid` arrays must share one 2-D shape, got {X.shape}, {Y.shape}, {P.shape}")
    elif log_prob_fn is not None:
        X, Y, P = density_grid(log_prob_fn, bounds if bounds is not None else _bounds_from(x), resolution)
    else:
        X = Y = P = None
    if P is not None:
        ax.contour(X, Y, P, levels=levels, cmap=cmap, linewidths=0.8, zorder=3)  # lines above dense clouds
    idx = np.arange(x.shape[0])
    if w is None:
        if x.shape[0] > max_points:
            idx = np.random.default_rng(seed).choice(x.shape[0], max_points, replace=False)
        sizes = size
    else:
        idx = np.argsort(w, kind="stable")[-max_points:]  # heaviest points, drawn last (on top)
        sizes = size * x.shape[0] * w[idx]
    ax.scatter(x[idx, 0], x[idx, 1], s=sizes, c=color, alpha=alpha, linewidths=0, zorder=2)
    if bounds is not None:
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_ylim(bounds[2], bounds[3])
    elif X is not None:
        ax.set_xlim(X.min(), X.max())
        ax.set_ylim(Y.min(), Y.max())
    ax.set_aspect("equal", adjustable="box")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_hist_1d(
    ax: Any,
    samples: Any,
    weights: Any = None,
    density_fn: Callable[[Any], Any] | None = None,
    *,
    log_weights: Any = None,
    bins: int | Sequence[float] = 60,
    range: tuple[float, float] | None = None,  # noqa: A002 (matplotlib's name)
    color: str = "C0",
    label: str | None = None,
    density_label: str = "target",
    title: str | None = None,
):
    """Normalised (weighted) histogram of 1-D ``samples`` ``(N,)`` or ``(N, 1)``, with the curve of
    ``density_fn`` (maps an ``(M,)`` array of points to ``(M,)`` normalised density values)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"`samples` must be shaped (N,) or (N, 1), got {np.shape(samples)}")
    w = _weights_or_none(x.shape[0], weights, log_weights)
    if range is None:
        lo, hi = np.percentile(x, [0.1, 99.9])
        pad = 0.1 * max(hi - lo, 1e-6)
        range = (float(lo - pad), float(hi + pad))
    ax.hist(x, bins=bins, range=range, weights=w, density=True, color=color, alpha=0.45, label=label)
    if density_fn is not None:
        grid = np.linspace(range[0], range[1], 400)
        dens = np.asarray(density_fn(grid.astype(np.float32)), dtype=np.float64).reshape(-1)
        if dens.shape != grid.shape:
            raise ValueError(f"`density_fn` must map (M,) points to (M,) values, got {dens.shape} for M = {grid.size}")
        ax.plot(grid, dens, color="k", lw=1.2, label=density_label)
    if label is not None or density_fn is not None:
        ax.legend(frameon=False)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_ess_trace(
    ax: Any,
    ess: Any,
    resampled: Any = None,
    *,
    times: Any = None,
    num_particles: int | None = None,
    threshold: float | None = None,
    label: str | None = None,
    color: str = "C0",
):
    """ESS history of a particle run: one point per step (``ess`` ``(K,)``).

    With ``num_particles`` the y-axis is ESS / N; ``threshold`` (in the y-axis' units, e.g. the
    resampling threshold 0.5 with ``num_particles``) is drawn as a dashed line; steps flagged in ``resampled`` ``(K,)`` are marked with dots. The x-axis is the
    step index, or ``times`` ``(K,)`` (e.g. the time t at the end of each step; pass
    ``result.times[1:]``) — the axis is then inverted so generative time runs left to right.
    """
    e = np.asarray(ess, dtype=np.float64).reshape(-1)
    k = e.shape[0]
    if k == 0:
        raise ValueError("`ess` is empty")
    xs = np.arange(1, k + 1) if times is None else np.asarray(times, dtype=np.float64).reshape(-1)
    if xs.shape != (k,):
        raise ValueError(f"`times` must have shape ({k},) like `ess`, got {xs.shape}")
    if num_particles is not None:
        if isinstance(num_particles, bool) or not isinstance(num_particles, (int, np.integer)) or num_particles < 1:
            raise ValueError(f"`num_particles` must be a positive integer, got {num_particles!r}")
        e = e / num_particles
    ax.plot(xs, e, color=color, lw=1.2, label=label)
    if resampled is not None:
        r = np.asarray(resampled, dtype=bool).reshape(-1)
        if r.shape != (k,):
            raise ValueError(f"`resampled` must have shape ({k},) like `ess`, got {r.shape}")
        if r.any():
            ax.plot(xs[r], e[r], "o", ms=3, color=color, label=None if label is None else f"{label}: resampled")
    if threshold is not None:
        ax.axhline(threshold, ls="--", lw=0.8, color="gray")
    if times is not None:
        ax.set_xlabel("t")
        if xs[0] > xs[-1]:
            ax.invert_xaxis()
    else:
        ax.set_xlabel("step")
    ax.set_ylabel("ESS / N" if num_particles is not None else "ESS")
    if label is not None:
        ax.legend(frameon=False)
    return ax
