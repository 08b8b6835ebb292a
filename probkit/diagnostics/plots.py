"""Small matplotlib helpers for tutorials and reports.

Each function draws on a given ``matplotlib.axes.Axes`` and returns it; none creates figures (but
:func:`plot_diagnostics`, one figure for any probkit result), calls ``pyplot.show`` or picks a
backend, so they work headless (``MPLBACKEND=Agg``). matplotlib is imported lazily. Inputs may
be JAX or NumPy arrays.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from probkit import _checks
from probkit.diagnostics.arviz import normalised_weights, step_times

__all__ = [
    "plot_samples_on_density", "plot_hist_1d", "plot_ess_trace", "density_grid",
    "plot_smc_history", "plot_marginals", "plot_chains", "plot_diagnostics",
]


def _weights_or_none(n: int, weights: Any, log_weights: Any) -> np.ndarray | None:
    return None if weights is None and log_weights is None else normalised_weights(n, log_weights, weights)


def _bounds_from(samples: np.ndarray, pad: float = 0.15) -> tuple[float, float, float, float]:
    lo, hi = np.percentile(samples, 0.5, axis=0), np.percentile(samples, 99.5, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def density_grid(
    logdensity_fn: Callable[[Any], Any],
    bounds: Sequence[float],
    resolution: int = 150,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y, P)`` meshes of ``P = exp(logdensity_fn(points))`` / its maximum (so contour levels
    are relative) on a ``resolution x resolution`` grid over ``bounds = (xmin, xmax, ymin, ymax)``;
    ``logdensity_fn`` maps ``(M, 2)`` points to ``(M,)`` log densities (unnormalised is fine), e.g.
    ``jax.vmap(gm.log_prob)``."""
    if len(bounds) != 4 or not (bounds[0] < bounds[1] and bounds[2] < bounds[3]):
        raise ValueError(f"`bounds` must be (xmin, xmax, ymin, ymax) with min < max, got {bounds!r}")
    _checks.positive_int("resolution", resolution, minimum=2)
    X, Y = np.meshgrid(np.linspace(bounds[0], bounds[1], resolution), np.linspace(bounds[2], bounds[3], resolution))
    pts = np.stack([X.ravel(), Y.ravel()], axis=1).astype(np.float32)
    lp = np.asarray(logdensity_fn(pts), dtype=np.float64).reshape(-1)
    if lp.shape[0] != pts.shape[0]:
        raise ValueError(f"`logdensity_fn` must map (M, 2) points to (M,) values, got {lp.shape[0]} values for M = {pts.shape[0]}")
    finite = np.isfinite(lp)
    if not finite.any():
        raise ValueError("`logdensity_fn` is not finite anywhere on the grid")
    P = np.where(finite, np.exp(lp - lp[finite].max()), 0.0).reshape(X.shape)
    return X, Y, P


def plot_samples_on_density(
    ax: Any,
    samples: Any,
    logdensity_fn: Callable[[Any], Any] | None = None,
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

    The density is ``logdensity_fn`` (``(M, 2) -> (M,)`` log density) evaluated on a grid over
    ``bounds`` (default: the samples' 0.5–99.5 percentile box, padded), or a precomputed
    ``grid = (X, Y, P)`` (see :func:`density_grid`). With ``weights`` / ``log_weights`` the marker
    area is proportional to ``N w_i`` (equal weights give ``size``) and points are drawn in order
    of increasing weight; at most ``max_points`` points are drawn (a random subset, fixed ``seed``;
    weighted samples keep the heaviest ones).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"`samples` must be shaped (N, 2), got {x.shape}")
    if logdensity_fn is not None and grid is not None:
        raise ValueError("give either `logdensity_fn` or `grid`, not both")
    w = _weights_or_none(x.shape[0], weights, log_weights)
    if grid is not None:
        if len(grid) != 3:
            raise ValueError("`grid` must be a tuple (X, Y, P) of equal-shape 2-D arrays")
        X, Y, P = (np.asarray(g) for g in grid)
        if not (X.shape == Y.shape == P.shape and X.ndim == 2):
            raise ValueError(f"`grid` arrays must share one 2-D shape, got {X.shape}, {Y.shape}, {P.shape}")
    elif logdensity_fn is not None:
        X, Y, P = density_grid(logdensity_fn, bounds if bounds is not None else _bounds_from(x), resolution)
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
        ax.set(xlim=(bounds[0], bounds[1]), ylim=(bounds[2], bounds[3]))
    elif X is not None:
        ax.set(xlim=(X.min(), X.max()), ylim=(Y.min(), Y.max()))
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
    resampling threshold 0.5 with ``num_particles``) is drawn as a dashed line; steps flagged in
    ``resampled`` ``(K,)`` are marked with dots. The x-axis is the step index, or ``times``
    ``(K,)`` (e.g. ``result.times[1:]``), inverted so generative time runs left to right.
    """
    e = np.asarray(ess, dtype=np.float64).reshape(-1)
    k = e.shape[0]
    if k == 0:
        raise ValueError("`ess` is empty")
    xs = np.arange(1, k + 1) if times is None else np.asarray(times, dtype=np.float64).reshape(-1)
    if xs.shape != (k,):
        raise ValueError(f"`times` must have shape ({k},) like `ess`, got {xs.shape}")
    if num_particles is not None:
        e = e / _checks.positive_int("num_particles", num_particles)
    ax.plot(xs, e, color=color, lw=1.2, label=label)
    if resampled is not None:
        r = np.asarray(resampled, dtype=bool).reshape(-1)
        if r.shape != (k,):
            raise ValueError(f"`resampled` must have shape ({k},) like `ess`, got {r.shape}")
        if r.any():
            ax.plot(xs[r], e[r], "o", ms=3, color=color, label=None if label is None else f"{label}: resampled")
    if threshold is not None:
        ax.axhline(threshold, ls="--", lw=0.8, color="gray")
    _time_xaxis(ax, xs, times is not None, "t")
    ax.set_ylabel("ESS / N" if num_particles is not None else "ESS")
    if label is not None:
        ax.legend(frameon=False)
    return ax


def _time_xaxis(ax: Any, xs: np.ndarray, is_time: bool, label: str) -> None:
    """Label the x-axis (``step``, or ``label`` for times), inverted so generative time runs left to right."""
    ax.set_xlabel(label if is_time else "step")
    if is_time and xs[0] > xs[-1] and not ax.xaxis_inverted():
        ax.invert_xaxis()


def plot_smc_history(axes: Any, result: Any, *, color: str = "C0", label: str | None = None, threshold: float | None = 0.5):
    """ESS / N and the spread of the log-weights over time of a particle run, resampling marked.

    Args:
      axes: two Axes ``(ax_ess, ax_spread)``, or one Axes (the spread then goes on a twin y-axis).
      result: a :class:`probkit.smc.WeightedParticles` (``ess``, ``resampled``,
        ``log_weight_spread``, ``times``, ``log_weights``) from ``probkit.fkc``, ``probkit.inverse``
        or ``probkit.smc.run_smc``.
      threshold: the resampling threshold drawn on the ESS axis (``None``: none).

    The x-axis is the time t at the end of each step, inverted so that generative time runs left
    to right; each resampling event is a thin vertical line. Returns ``(ax_ess, ax_spread)``.
    """
    for name in ("ess", "resampled", "log_weight_spread", "log_weights"):
        if not hasattr(result, name):
            raise ValueError(f"`result` must be a WeightedParticles-like result with `{name}`, got {type(result).__name__}")
    ess = np.asarray(result.ess, dtype=np.float64).reshape(-1)
    k = ess.shape[0]
    n = int(np.shape(result.log_weights)[0])
    spread = np.asarray(result.log_weight_spread, dtype=np.float64).reshape(-1)
    resampled = np.asarray(result.resampled, dtype=bool).reshape(-1)
    if spread.shape != (k,) or resampled.shape != (k,):
        raise ValueError("`result.ess`, `result.resampled` and `result.log_weight_spread` must share one length")
    xs = step_times(result, k)
    if xs is None:
        xs = np.arange(1, k + 1, dtype=np.float64)
    twin = not isinstance(axes, (list, tuple, np.ndarray))
    ax_ess, ax_spread = (axes, axes.twinx()) if twin else np.ravel(axes)[:2]
    for ax in (ax_ess,) if twin else (ax_ess, ax_spread):
        for x in xs[resampled]:
            ax.axvline(x, color="0.8", lw=0.6, zorder=0)
        _time_xaxis(ax, xs, getattr(result, "times", None) is not None, "t (generative time runs left to right)")
    ax_ess.plot(xs, ess / n, color=color, lw=1.3, label=label or "ESS / N")
    if threshold is not None:
        ax_ess.axhline(threshold, ls="--", lw=0.8, color="gray")
    ax_ess.set(ylim=(0, 1.05), ylabel="ESS / N")
    ax_ess.set_title(f"ESS ({int(resampled.sum())} resampling events, grey lines)", fontsize=10)
    ax_spread.plot(xs, spread, color="C3" if twin else color, lw=1.0, ls=":" if twin else "-", label="log-weight spread")
    ax_spread.set_ylabel("max - min log-weight")
    if not twin:
        ax_spread.set_title("log-weight spread (max - min)", fontsize=10)
    return ax_ess, ax_spread


def plot_marginals(
    axes: Any,
    samples: Any,
    reference: Any = None,
    *,
    weights: Any = None,
    log_weights: Any = None,
    coords: Sequence[int] | None = None,
    bins: int = 50,
    label: str = "samples",
    reference_label: str = "reference",
    color: str = "C0",
):
    """Histograms of the coordinates ``coords`` of ``samples`` ``(N, d)`` (weighted if
    ``weights``/``log_weights`` are given), each against the same coordinate of ``reference``
    ``(M, d)`` (e.g. exact posterior draws) drawn as a black step line.

    ``axes``: one Axes per coordinate (default coords: the first ``len(axes)``). Returns ``axes``.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)  # (N,) -> (N, 1)
    axs = np.ravel(np.array(axes, dtype=object))
    coords = list(range(min(len(axs), x.shape[1]))) if coords is None else list(coords)
    if len(coords) > len(axs):
        raise ValueError(f"got {len(coords)} `coords` but only {len(axs)} axes")
    if any(not 0 <= c < x.shape[1] for c in coords):
        raise ValueError(f"`coords` must lie in [0, {x.shape[1]}), got {coords}")
    w = _weights_or_none(x.shape[0], weights, log_weights)
    ref = None
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        ref = ref.reshape(ref.shape[0], -1)
        if ref.shape[1] != x.shape[1]:
            raise ValueError(f"`reference` must have {x.shape[1]} coordinates like `samples`, got {ref.shape[1]}")
    for ax, c in zip(axs, coords):
        both = x[:, c] if ref is None else np.concatenate([x[:, c], ref[:, c]])
        lo, hi = np.percentile(both, [0.2, 99.8])
        pad = 0.05 * max(hi - lo, 1e-6)
        edges = np.linspace(lo - pad, hi + pad, bins + 1)
        ax.hist(x[:, c], bins=edges, weights=w, density=True, color=color, alpha=0.5, label=label)
        if ref is not None:
            ax.hist(ref[:, c], bins=edges, density=True, histtype="step", color="k", lw=1.0, label=reference_label)
        ax.set_title(f"x[{c}]", fontsize=10)
        ax.set_yticks([])
    axs[0].legend(frameon=False, fontsize=8)
    return axes


def plot_chains(result: Any, *, kind: str = "trace", var_names: Sequence[str] = ("t",), max_coords: int = 4,
                max_chains: int | None = 8, axes: Any = None):
    """Trace (``kind="trace"``) or rank (``kind="rank"``) plots of the chains of a
    :class:`probkit.dmcmc.DLGResult` (or any ArviZ InferenceData) via ``arviz.plot_trace`` /
    ``arviz.plot_rank``: ``t`` is the noise level, ``x`` its first ``max_coords`` coordinates.
    Rank plots that are flat across chains indicate mixing (Vehtari et al. 2021). Returns
    ArviZ's axes. ``max_chains``: draw the first chains only (``None``: all).
    """
    import arviz as az

    _checks.choice("kind", kind, ("trace", "rank"))
    idata = result if hasattr(result, "posterior") else None
    if idata is None:
        if not hasattr(result, "to_inference_data"):
            raise ValueError(f"`result` must be a DLGResult or an InferenceData, got {type(result).__name__}")
        idata = result.to_inference_data(max_coords=max_coords)
    if max_chains is not None:
        idata = idata.isel(chain=slice(0, _checks.positive_int("max_chains", max_chains)))
    if kind == "trace":
        return az.plot_trace(idata, var_names=list(var_names), axes=axes, compact=False)
    return az.plot_rank(idata, var_names=list(var_names), ax=axes)


def plot_diagnostics(result: Any, reference: Any = None, *, logdensity_fn: Callable[[Any], Any] | None = None,
                     max_coords: int = 4, title: str | None = None):
    """One diagnostic figure for any probkit result; returns the matplotlib Figure.

    * :class:`probkit.smc.WeightedParticles` (FKC, inverse problems, SMC): ESS / N and log-weight
      spread over time with resampling events, then the weighted marginals (against
      ``reference`` samples when given; for 2-D particles also the cloud over ``logdensity_fn``'s
      contours).
    * :class:`probkit.dmcmc.DLGResult`: trace and rank plots of the noise level t (ArviZ), and
      the denoised samples' marginals.
    * an array of samples ``(N, d)`` (e.g. ``probkit.sample(...).samples``): marginals.
    * :class:`probkit.privacy.EpsilonPosterior`: the posterior of epsilon with its 95% credible
      interval.
    """
    import matplotlib.pyplot as plt

    if hasattr(result, "log_weight_spread"):  # WeightedParticles
        x = np.asarray(result.particles).reshape(np.shape(result.log_weights)[0], -1)
        k = min(max_coords, x.shape[1])
        extra = 1 if (x.shape[1] == 2 and (logdensity_fn is not None or reference is not None)) else 0
        fig, axs = plt.subplots(1, 2 + k + extra, figsize=(3.3 * (2 + k + extra), 3.2), layout="constrained")
        plot_smc_history(axs[:2], result)
        plot_marginals(axs[2:2 + k], x, reference, log_weights=result.log_weights, label="weighted particles")
        if extra:
            plot_samples_on_density(axs[-1], x, logdensity_fn, log_weights=result.log_weights,
                                    bounds=None if reference is None else _bounds_from(np.asarray(reference)))
            if reference is not None and logdensity_fn is None:
                axs[-1].scatter(*np.asarray(reference)[:1000].T, s=2, c="k", alpha=0.3)
            axs[-1].set_title("particles (area ~ weight)", fontsize=10)
    elif hasattr(result, "t_trace") and hasattr(result, "samples"):  # DLGResult
        x = np.asarray(result.samples).reshape(np.shape(result.samples)[0], -1)
        k = min(max_coords, x.shape[1])
        fig, axs = plt.subplots(1, 2 + k, figsize=(3.3 * (2 + k), 3.2), layout="constrained")
        ax_tr, ax_rk = axs[:2]
        t = np.asarray(result.t)
        for c in range(min(8, t.shape[0])):
            ax_tr.plot(t[c], lw=0.8)
        ax_tr.set(title="trace of t (8 chains)", xlabel="kept draw", ylabel="t")
        plot_chains(result, kind="rank", var_names=("t",), max_chains=4, axes=np.array([ax_rk]))
        ax_rk.set_title("rank plot of t, 4 chains (ArviZ)", fontsize=10)
        plot_marginals(axs[2:], x, reference, label="denoised DLG draws")
    elif hasattr(result, "grid_cdf") and hasattr(result, "samples"):  # EpsilonPosterior
        fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
        eps = np.asarray(result.samples, dtype=np.float64)
        ax.hist(eps, bins=80, density=True, color="C0", alpha=0.5, label="posterior of epsilon")
        lo, hi = result.interval(0.95)
        ax.axvspan(lo, hi, color="C0", alpha=0.15, label=f"95% credible [{lo:.2f}, {hi:.2f}]")
        if reference is not None:
            ax.axvline(float(reference), color="k", lw=1.2, label=f"reference {float(reference):.2f}")
        ax.set_xlabel("epsilon")
        ax.legend(frameon=False, fontsize=8)
    else:
        x = np.asarray(getattr(result, "samples", result), dtype=np.float64)
        if x.ndim < 2:
            raise ValueError(f"`result` must be a probkit result or samples shaped (N, d), got {type(result).__name__}")
        x = x.reshape(x.shape[0], -1)
        k = min(max_coords, x.shape[1])
        fig, axs = plt.subplots(1, k, figsize=(3.3 * k, 3.2), layout="constrained", squeeze=False)
        plot_marginals(axs[0], x, reference)
    if title is not None:
        fig.suptitle(title)
    return fig
