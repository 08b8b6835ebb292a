"""``probkit demo``: a tour of the toolkit on embedded problems with exact answers (no downloads).

Five panels, one figure (``tour.png``) and one JSON summary (``summary.json``) in ``--out``.
Every panel compares probkit's method against an exact reference, names its metric, and checks
it against a documented tolerance (``summary["panels"][name]["checks"]``):

``fkc``
    Feynman-Kac correctors (:mod:`probkit.fkc`): annealing ``p^2`` of a five-mode mixture and
    the product of two mixture experts, with the FK weights (resampled) and without them (the same
    SDE, uncorrected), against exact draws of the target (a fine grid for ``p^2``, the closed-form
    product for the experts). Metric: sliced 2-Wasserstein distance (SW2) to exact draws, and the
    log-normalising-constant estimate against its exact value.
    Checks: for the anneal, FKC's SW2 is below the unweighted run's (measured 2-8x lower over six
    seeds); for both, FKC's SW2 is within ``sw_factor`` = 10 x the exact-vs-exact floor, a sanity
    bound: FKC's mode masses are set by a few resampling events and vary from seed to seed
    (SW2 / floor 1.6-9.5 over six seeds at N = 4096 and 8192, 200 steps), and for this product the
    uncorrected SDE is already close. The log Z estimates are reported, not checked (Euler bias and
    seed spread ~0.5 nats at this size).
``inverse``
    An inverse problem with a mixture prior, ``y = A x + noise`` with one observed row: the
    ensemble sampler (DDPM steps), twisted SMC and DPS (:mod:`probkit.inverse`) against the exact posterior
    (``GaussianMixture.condition``). Metric: SW2 to exact posterior draws; log p(y) estimates of
    the weighted samplers against ``GaussianMixture.log_marginal_likelihood``.
    Checks: ensemble and twisted SMC within ``sw_factor`` x the floor and ``|log p(y)_hat - log p(y)|
    <= logz_tol``; DPS (approximate) is reported, not checked.
``dmcmc``
    Denoising Langevin Gibbs (:func:`probkit.dmcmc.dlg`) against the plain integrator from noise
    at equal NFE (score evaluations per sample) on the 8-mode ring. Metric: SW2 to exact draws.
    Check: at the smallest budget DLG's SW2 is below the plain integrator's.
``privacy``
    Bayesian estimation of epsilon (:func:`probkit.privacy.epsilon_posterior`) from a simulated
    membership-inference audit of the Gaussian mechanism, against the Clopper-Pearson interval
    (:func:`probkit.privacy.epsilon_confidence_interval`). Metric: width of the 95% interval, and
    whether it covers the attack's true epsilon. Checks: both cover it; the credible interval is
    narrower.
``integrators``
    The five reverse-diffusion integrators of :mod:`probkit.diffusion` on the 8-mode ring at
    several step counts. Metric: SW2 to exact draws against the exact-vs-exact floor. Check: the
    best integrator at the largest step count is within ``sw_factor`` x the floor.

``--size tiny`` runs every panel at a few hundred particles (the test suite's size; tolerances
are scaled by the larger Monte Carlo floor); ``--only fkc,privacy`` runs some panels.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks
from probkit.diagnostics.metrics import sliced_wasserstein
from probkit.diffusion import INTEGRATORS, VP, sample
from probkit.models.gmm import GaussianMixture

__all__ = ["PANELS", "SIZES", "demo_target", "run_demo", "register", "DEFAULT_GRIDS"]

PANELS = ("fkc", "inverse", "dmcmc", "privacy", "integrators")

# A grid that suits each integrator (first-order solvers: uniform/quadratic in t; DPM-Solver: log-SNR).
DEFAULT_GRIDS = {
    "euler_maruyama": "uniform",
    "ddpm": "quadratic",
    "ddim": "quadratic",
    "heun": "uniform",
    "dpm_solver_2m": "log_snr",
}

# Problem sizes. "default": the tour (under a minute warm on 2 CPU cores); "tiny": the test suite.
SIZES: dict[str, dict[str, Any]] = {
    "default": dict(fkc_n=4096, fkc_steps=200, inv_n=2048, inv_steps=100, dlg_n=4096, dlg_budgets=(10, 20),
                    priv_n=1000, int_n=4096, int_steps=(5, 10, 25), int_methods=INTEGRATORS),
    # compile time dominates at these sizes, so "tiny" cuts configurations (compiles), not particles
    "tiny": dict(fkc_n=2048, fkc_steps=100, inv_n=2048, inv_steps=100, dlg_n=4096, dlg_budgets=(10,),
                 priv_n=300, int_n=2048, int_steps=(5, 25), int_methods=("euler_maruyama", "dpm_solver_2m")),
}

# Tolerances of the checks (documented in the module docstring and written to the JSON).
TOLERANCES = {
    "fkc": {"sw_factor": 10.0},
    "inverse": {"sw_factor": 3.0, "logz_tol": 0.15},
    "dmcmc": {},
    "privacy": {"level": 0.95},
    "integrators": {"sw_factor": 2.0},
}
_TINY_SCALE = {"logz_tol": 2.0}  # log Z error scales like 1/sqrt(N): 4x fewer particles -> 2x tolerance


def demo_target() -> GaussianMixture:
    """Eight anisotropic Gaussians on a ring of radius 3 with unequal weights (the ring target)."""
    k = 8
    angles = 2 * np.pi * np.arange(k) / k
    means = 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    # each component elongated along the ring's tangent
    tang = np.stack([-np.sin(angles), np.cos(angles)], 1)
    rad = means / 3.0
    covs = 0.25 * np.einsum("ki,kj->kij", tang, tang) + 0.03 * np.einsum("ki,kj->kij", rad, rad)
    weights = np.array([2, 1, 2, 1, 2, 1, 2, 1], float)
    return GaussianMixture(jnp.asarray(weights / weights.sum()), jnp.asarray(means), jnp.asarray(covs))


def five_modes() -> GaussianMixture:
    """Five modes of unequal weights and widths (the annealing target of panel ``fkc``)."""
    return GaussianMixture(
        jnp.array([0.35, 0.25, 0.2, 0.12, 0.08]),
        jnp.array([[-3.0, -2.0], [2.5, 2.5], [3.0, -2.5], [-2.5, 3.0], [0.0, 0.0]]),
        jnp.array([[0.2, 0.2], [0.9, 0.6], [0.4, 0.4], [1.0, 1.0], [0.15, 0.3]]),
    )


def experts() -> tuple[GaussianMixture, GaussianMixture]:
    """Expert A knows left/right, expert B up/down: their product keeps four corners."""
    a = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-2.0, 0.0], [2.0, 0.0]]), jnp.array([[0.5, 4.0], [0.5, 4.0]]))
    b = GaussianMixture(jnp.array([0.3, 0.7]), jnp.array([[0.0, -2.0], [0.0, 2.0]]), jnp.array([[4.0, 0.5], [4.0, 0.5]]))
    return a, b


# ----------------------------------------------------------------------------------- helpers
def _sw(x: Any, y: Any, key: jax.Array) -> float:
    """Sliced 2-Wasserstein distance, 256 projections (probkit.diagnostics.sliced_wasserstein)."""
    return float(sliced_wasserstein(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), key, num_projections=256))


LIM = 6.0
_G = np.linspace(-LIM, LIM, 241)
_H = _G[1] - _G[0]
_PTS = np.stack(np.meshgrid(_G, _G, indexing="ij"), -1).reshape(-1, 2)


def _grid_log_density(gm: GaussianMixture) -> np.ndarray:
    """log density of a 2-D mixture on the plotting grid, by SciPy (no compilation)."""
    from scipy.stats import multivariate_normal  # imported on use: it slows down the CLI's start

    w, mu, cov = (np.asarray(a, np.float64) for a in (gm.weights, gm.means, gm.full_covs()))
    return np.logaddexp.reduce([np.log(wk) + multivariate_normal(m, c).logpdf(_PTS) for wk, m, c in zip(w, mu, cov)])


def _grid_samples(key: jax.Array, log_dens: np.ndarray, n: int) -> jax.Array:
    """Exact draws from a density tabulated on the grid (cell by inverse CDF, uniform jitter)."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    p = np.exp(log_dens - log_dens.max())
    idx = rng.choice(p.size, n, p=p / p.sum())
    return jnp.asarray(_PTS[idx] + _H * (rng.random((n, 2)) - 0.5), jnp.float32)


def _exact_and_floor(sampler: Callable[[jax.Array], jax.Array], k_exact: jax.Array, k_sw: jax.Array,
                     reps: int = 3) -> tuple[jax.Array, float]:
    """Exact reference draws, and the mean SW2 between them and independent exact draws of the
    same size (the Monte Carlo floor of the metric)."""
    ref = sampler(k_exact)
    return ref, float(np.mean([_sw(sampler(k), ref, k_sw) for k in jax.random.split(jax.random.fold_in(k_sw, 7), reps)]))


def _finish_axes(ax, title: str, floor: float | None = None, xlabel: str | None = None,
                 ylabel: str = "sliced W2 to exact", fontsize: int = 8) -> None:
    """The metric panels' common dressing: the exact-vs-exact floor, labels, legend and title."""
    if floor is not None:
        ax.axhline(floor, ls="--", color="0.5", lw=1, label="exact vs exact")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=fontsize, frameon=False)
    ax.set_title(title, fontsize=9)


def _check(name: str, value: float, bound: float, op: str = "<=") -> dict[str, Any]:
    ok = bool(value <= bound) if op == "<=" else bool(value >= bound)
    return {"name": name, "value": float(value), "bound": float(bound), "op": op, "passed": ok}


def _contours(ax, log_dens: np.ndarray, color: str = "k") -> None:
    d = np.exp(log_dens - log_dens.max()).reshape(len(_G), len(_G))
    ax.contour(_G, _G, d.T, levels=[0.01, 0.05, 0.2, 0.5, 0.8], colors=color, linewidths=0.7, zorder=3)


def _scatter(ax, x: Any, title: str, log_dens: np.ndarray | None = None, color: str = "C0", lim: float = LIM,
             max_points: int = 2000) -> None:
    x = np.asarray(x)
    if x.shape[0] > max_points:
        x = x[np.random.default_rng(0).choice(x.shape[0], max_points, replace=False)]
    if log_dens is not None:
        _contours(ax, log_dens)
    ax.scatter(x[:, 0], x[:, 1], s=2.5, alpha=0.35, color=color, linewidths=0, zorder=2)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)


# ------------------------------------------------------------------------------------ panels
def panel_fkc(key: jax.Array, size: dict, tol: dict) -> tuple[dict, Callable]:
    """(a) FKC annealing (beta = 2) and product of experts, weighted vs unweighted vs exact."""
    from probkit import fkc

    proc = VP()
    n, steps = size["fkc_n"], size["fkc_steps"]
    t_min = float(proc.t_min)
    five, (ea, eb) = five_modes(), experts()
    beta = 2.0
    cases = {
        "anneal": dict(
            log_dens=beta * _grid_log_density(five.noised(proc, t_min)),
            run=lambda k, w: fkc.anneal(k, proc, five.score_fn(proc), beta, n, steps, shape=(2,), weighted=w),
            label="anneal p^2",
        ),
        "product": dict(
            log_dens=_grid_log_density(ea.noised(proc, t_min)) + _grid_log_density(eb.noised(proc, t_min)),
            run=lambda k, w: fkc.product(k, proc, [ea.score_fn(proc), eb.score_fn(proc)], n, steps, shape=(2,), weighted=w),
            label="product p_A p_B",
            exact_log_z=float(ea.noised(proc, t_min).log_normalizer_product(eb.noised(proc, t_min))),
        ),
    }
    out: dict[str, Any] = {"metric": "sliced W2 to exact draws of the target (lower is better); log Z error",
                           "num_particles": n, "num_steps": steps, "cases": {}, "checks": []}
    draw: dict[str, Any] = {}
    k_run, k_ex, k_sw, k_rs = jax.random.split(key, 4)
    for name, c in cases.items():
        fk = c["run"](k_run, True)
        plain = c["run"](k_run, False)
        x_fk = fk.resample(k_rs, n)
        log_z = c.get("exact_log_z", float(np.logaddexp.reduce(c["log_dens"]) + 2 * np.log(_H)))
        exact, floor = _exact_and_floor(lambda k, c=c: _grid_samples(k, c["log_dens"], n), k_ex, k_sw)
        res = {
            "sw2_fkc": _sw(x_fk, exact, k_sw), "sw2_unweighted": _sw(plain.particles, exact, k_sw), "sw2_floor": floor,
            "log_z_hat": float(fk.log_evidence), "log_z_exact": log_z, "nfe": int(fk.nfe),
            "resampling_events": int(np.sum(np.asarray(fk.resampled))), "final_ess": float(fk.ess[-1]),
        }
        out["cases"][name] = res
        out["checks"].append(_check(f"{name}: SW2 FKC <= {tol['sw_factor']} x floor", res["sw2_fkc"],
                                    tol["sw_factor"] * floor))
        if name == "anneal":
            out["checks"].append(_check(f"{name}: SW2 FKC <= SW2 unweighted", res["sw2_fkc"], res["sw2_unweighted"]))
        draw[name] = (c, np.asarray(plain.particles), np.asarray(x_fk), fk, res)

    def plot(axes):
        for (c, plain, x_fk, _, res), ax_u, ax_w in zip(draw.values(), axes[0::2], axes[1::2]):
            _scatter(ax_u, plain, f"{c['label']}: no weights\nSW2 {res['sw2_unweighted']:.3f}", c["log_dens"], "C3")
            _scatter(ax_w, x_fk, f"{c['label']}: FKC (resampled)\nSW2 {res['sw2_fkc']:.3f}", c["log_dens"], "C0")
        ax = axes[4]
        names = list(draw)
        xs = np.arange(len(names))
        for j, (lab, key_, col) in enumerate((("no weights", "sw2_unweighted", "C3"), ("FKC", "sw2_fkc", "C0"),
                                              ("exact vs exact", "sw2_floor", "0.6"))):
            ax.bar(xs + (j - 1) * 0.27, [draw[m][4][key_] for m in names], 0.27, label=lab, color=col)
        ax.set_xticks(xs, names, fontsize=8)
        _finish_axes(ax, "metric: sliced W2 (lower is better)")

    return out, plot


def panel_inverse(key: jax.Array, size: dict, tol: dict) -> tuple[dict, Callable]:
    """(b) Posterior of a mixture prior given one noisy linear measurement; exact by Kalman updates."""
    from probkit import inverse

    proc = VP()
    n, steps = size["inv_n"], size["inv_steps"]
    prior = demo_target()
    A = jnp.array([[1.0, 0.6]])
    noise = 0.4
    y = jnp.array([1.5])
    post = prior.condition(A, y, noise)
    exact_log_py = float(prior.log_marginal_likelihood(A, y, noise))
    lik = inverse.gaussian(inverse.dense(A), y, noise)
    score, log_prob = prior.score_fn(proc), prior.logdensity_fn(proc)
    k_run, k_ex, k_sw, k_rs = jax.random.split(key, 4)
    exact, floor = _exact_and_floor(lambda k: post.sample(k, n), k_ex, k_sw)
    runs = {
        "ensemble": inverse.ensemble(k_run, proc, score, lik, n, steps, logdensity_fn=log_prob, integrator="ddpm"),
        "twisted SMC": inverse.twisted_smc(k_run, proc, score, lik, n, steps, logdensity_fn=log_prob),
        "DPS": inverse.dps(k_run, proc, score, lik, n, steps),
    }
    out: dict[str, Any] = {"metric": "sliced W2 to exact posterior draws (lower is better); log p(y) error",
                           "observation": {"A": np.asarray(A).tolist(), "y": np.asarray(y).tolist(), "noise_std": noise},
                           "num_particles": n, "num_steps": steps, "sw2_floor": floor, "log_py_exact": exact_log_py,
                           "methods": {}, "checks": []}
    samples = {}
    for name, r in runs.items():
        x = r.resample(k_rs, n)
        samples[name] = np.asarray(x)
        weighted = name != "DPS"
        out["methods"][name] = {"sw2": _sw(x, exact, k_sw), "nfe": int(r.nfe),
                                "log_py_hat": float(r.log_evidence) if weighted else None,
                                "final_ess": float(r.ess[-1])}
        if weighted:
            m = out["methods"][name]
            out["checks"] += [
                _check(f"{name}: SW2 <= {tol['sw_factor']} x floor", m["sw2"], tol["sw_factor"] * floor),
                _check(f"{name}: |log p(y)_hat - log p(y)| <= {tol['logz_tol']:.2f}", abs(m["log_py_hat"] - exact_log_py),
                       tol["logz_tol"]),
            ]
    log_post = _grid_log_density(post)
    log_prior = _grid_log_density(prior)

    def plot(axes):
        ax = axes[0]
        _contours(ax, log_prior, "0.6")
        _scatter(ax, exact, "prior (grey), observation line,\nexact posterior draws", None, "k")
        xx = np.linspace(-LIM, LIM, 50)
        ax.plot(xx, (float(y[0]) - xx) / 0.6, "--", color="C2", lw=1)
        for i, (name, col) in enumerate((("ensemble", "C0"), ("twisted SMC", "C1"), ("DPS", "C4"))):
            m = out["methods"][name]
            lp = "" if m["log_py_hat"] is None else f", log p(y) {m['log_py_hat']:.2f}"
            _scatter(axes[i + 1], samples[name], f"{name}: SW2 {m['sw2']:.3f}{lp}", log_post, col)
        ax = axes[4]
        names = list(runs)
        ax.bar(np.arange(3), [out["methods"][m]["sw2"] for m in names], color=["C0", "C1", "C4"])
        ax.set_xticks(np.arange(3), names, fontsize=8)
        _finish_axes(ax, f"metric: sliced W2; exact log p(y) = {exact_log_py:.2f}", floor,
                     ylabel="sliced W2 to exact posterior")

    return out, plot


def panel_dmcmc(key: jax.Array, size: dict, tol: dict) -> tuple[dict, Callable]:
    """(c) DLG + Euler-Maruyama denoising vs Euler-Maruyama from noise, at equal NFE."""
    from probkit import dmcmc, smc

    proc = VP()
    target = demo_target()
    n = size["dlg_n"]
    spc = 8
    k_run, k_ex, k_sw = jax.random.split(key, 3)
    exact, floor = _exact_and_floor(lambda k: target.noised(proc, proc.t_min).sample(k, n), k_ex, k_sw)
    out: dict[str, Any] = {"metric": "sliced W2 to exact draws at equal NFE per sample (lower is better)",
                           "integrator": "euler_maruyama", "num_samples": n, "sw2_floor": floor, "budgets": {}, "checks": []}
    keep = {}
    for b in size["dlg_budgets"]:
        plain = sample(k_run, proc, target.score_fn(proc), (2,), n, b, "euler_maruyama", grid="uniform")
        # about a quarter of the budget on MALA sweeps (2 NFE each), the rest on the Euler-Maruyama
        # denoising pass (1 NFE a step)
        thin, burn = max(1, int(math.floor(0.25 * b / 2)) - 1), spc
        steps = int(b - (burn + spc * thin) * 2 / spc)
        res = dmcmc.dlg(k_run, proc, target.score_fn(proc), (2,), logdensity_fn=target.logdensity_fn(proc),
                        num_chains=n // spc, num_samples=spc, burn_in=burn, thin=thin,
                        x_move=smc.mala(dmcmc.noise_scaled_step(proc, 1.0)), t_move=dmcmc.NoiseGrid((0.02, 0.5), 64),
                        denoise=dmcmc.Denoise("euler_maruyama", steps, "uniform"))
        out["budgets"][str(b)] = {"sw2_plain": _sw(plain.samples, exact, k_sw), "sw2_dlg": _sw(res.samples, exact, k_sw),
                                  "nfe_plain": int(plain.nfe), "nfe_dlg": float(res.nfe), "nfe_mcmc": float(res.nfe_mcmc),
                                  "denoise_steps": steps, "acceptance": float(res.acceptance_rate)}
        keep[b] = (np.asarray(plain.samples), np.asarray(res.samples), res)
    b0 = min(size["dlg_budgets"])
    r0 = out["budgets"][str(b0)]
    out["checks"].append(_check(f"{b0} NFE: SW2 DLG <= SW2 plain", r0["sw2_dlg"], r0["sw2_plain"]))
    log_t = _grid_log_density(target)

    def plot(axes):
        plain, dl, res = keep[b0]
        _scatter(axes[0], plain, f"Euler-Maruyama from noise, {b0} NFE\nSW2 {r0['sw2_plain']:.3f}", log_t, "C3", lim=4.5)
        _scatter(axes[1], dl, f"DLG ({r0['nfe_mcmc']:.0f} MALA + {r0['denoise_steps']} EM), {r0['nfe_dlg']:.0f} NFE\n"
                 f"SW2 {r0['sw2_dlg']:.3f}", log_t, "C0", lim=4.5)
        ax = axes[2]
        bs = sorted(keep)
        ax.plot(bs, [out["budgets"][str(b)]["sw2_plain"] for b in bs], "o-", color="C3", label="Euler-Maruyama from noise")
        ax.plot(bs, [out["budgets"][str(b)]["sw2_dlg"] for b in bs], "s-", color="C0", label="DLG + Euler-Maruyama")
        ax.set_ylim(bottom=0)
        _finish_axes(ax, "metric: sliced W2 at equal NFE", floor, "NFE per sample")
        ax = axes[3]
        t_trace = np.asarray(res.t_trace)
        for c in range(min(6, t_trace.shape[0])):
            ax.plot(t_trace[c], lw=0.8)
        ax.set(xlabel="Gibbs sweep", ylabel="noise level t")
        ax.set_title(f"DLG chains in noise level (MALA acc. {res.acceptance_rate:.2f})", fontsize=9)

    return out, plot


def panel_privacy(key: jax.Array, size: dict, tol: dict) -> tuple[dict, Callable]:
    """(d) Posterior of epsilon from a simulated audit of the Gaussian mechanism vs Clopper-Pearson."""
    from probkit import privacy

    mech = privacy.GaussianMechanism(mu=2.0)
    delta, n, level = 1e-5, size["priv_n"], tol["level"]
    thr = 1.0 + mech.mu / 2  # a fixed attack; its own epsilon is the estimand
    true_eps = float(privacy.epsilon_from_rates(*(float(r) for r in mech.rates(thr)), delta))
    counts = privacy.simulate_counts(key, mech, n, n, thr)
    fp, fn = int(counts.fp[0]), int(counts.fn[0])
    post = privacy.epsilon_posterior(fp, n, fn, n, delta, key=key)
    cred = post.interval(level)
    cp = privacy.epsilon_confidence_interval(fp, n, fn, n, delta, level)
    out = {
        "metric": f"width of the {level:.0%} interval for the attack's epsilon (narrower is better), coverage",
        "mechanism": f"Gaussian mechanism mu = {mech.mu} (eps(delta) = {mech.epsilon(delta):.3f})",
        "delta": delta, "threshold": thr, "n_negative": n, "n_positive": n, "fp": fp, "fn": fn,
        "true_epsilon": true_eps, "posterior_mean": post.mean, "credible_interval": list(cred),
        "clopper_pearson_interval": list(cp), "width_bayes": cred[1] - cred[0], "width_cp": cp[1] - cp[0],
        "checks": [],
    }
    out["checks"] += [
        _check("credible interval covers the true epsilon", float(cred[0] <= true_eps <= cred[1]), 1.0, ">="),
        _check("Clopper-Pearson interval covers the true epsilon", float(cp[0] <= true_eps <= cp[1]), 1.0, ">="),
        _check("credible interval narrower than Clopper-Pearson", out["width_bayes"], out["width_cp"]),
    ]
    samples = np.asarray(post.samples)

    def plot(axes):
        ax = axes[0]
        lo, hi = min(cp[0], cred[0]) - 0.3, max(cp[1], cred[1]) + 0.3
        ax.hist(samples, bins=80, range=(lo, hi), density=True, color="C0", alpha=0.5, label="posterior of eps")
        ymax = ax.get_ylim()[1]
        ax.axvspan(*cred, color="C0", alpha=0.15, label=f"{level:.0%} credible: width {out['width_bayes']:.2f}")
        ax.plot(cp, [0.08 * ymax] * 2, "|-", color="C3", lw=2.5, ms=14, label=f"Clopper-Pearson: width {out['width_cp']:.2f}")
        ax.axvline(true_eps, color="k", lw=1.2, label=f"true eps of the attack {true_eps:.2f}")
        ax.set_xlabel("epsilon")
        ax.legend(fontsize=8, frameon=False, loc="upper right")
        ax.set_title(f"audit: FP {fp}/{n}, FN {fn}/{n}, delta = {delta:g}", fontsize=9)
        ax = axes[1]
        ax.bar([0, 1], [out["width_bayes"], out["width_cp"]], color=["C0", "C3"])
        ax.set_xticks([0, 1], ["Bayesian\n(probkit)", "Clopper-Pearson"], fontsize=8)
        ax.set_ylabel(f"{level:.0%} interval width")
        ax.set_title(f"metric: interval width ({out['width_bayes'] / out['width_cp']:.0%} of CP)", fontsize=9)

    return out, plot


def panel_integrators(key: jax.Array, size: dict, tol: dict) -> tuple[dict, Callable]:
    """(e) Every integrator on the 8-mode ring at several step counts (common random numbers)."""
    proc = VP()
    target = demo_target()
    n, steps = size["int_n"], tuple(size["int_steps"])
    k_ref, k_sw, k_run = jax.random.split(key, 3)
    end = target.noised(proc, proc.t_min)  # the samplers stop at t_min
    exact, floor = _exact_and_floor(lambda k: end.sample(k, n), k_ref, k_sw)
    score = target.score_fn(proc)
    methods = tuple(size["int_methods"])
    results: dict[str, dict[str, Any]] = {m: {} for m in methods}
    shown, s_shown = {}, steps[1 if len(steps) > 1 else 0]
    for m in methods:
        for s in steps:
            r = sample(k_run, proc, score, (2,), n, s, m, grid=DEFAULT_GRIDS[m])
            results[m][str(s)] = {"sliced_wasserstein": _sw(r.samples, exact, k_sw), "nfe": int(r.nfe)}
            if s == s_shown:
                shown[m] = np.asarray(r.samples)
    best = min(results[m][str(steps[-1])]["sliced_wasserstein"] for m in methods)
    out = {"metric": "sliced W2 to exact draws vs NFE (lower is better)", "num_samples": n, "steps": list(steps),
           "grids": DEFAULT_GRIDS, "sw2_floor": floor, "results": results,
           "checks": [_check(f"best integrator at {steps[-1]} steps <= {tol['sw_factor']} x floor", best, tol["sw_factor"] * floor)]}
    log_t = _grid_log_density(target)

    def plot(axes):
        ax = axes[0]
        for i, m in enumerate(methods):
            ax.plot([results[m][str(s)]["nfe"] for s in steps], [results[m][str(s)]["sliced_wasserstein"] for s in steps],
                    "o-", color=f"C{i}", label=m, ms=3)
        ax.set_xscale("log")
        _finish_axes(ax, "metric: sliced W2 vs NFE", floor, "NFE per sample", fontsize=7)
        for ax in axes[1 + len(methods):]:
            ax.axis("off")
        for ax, m in zip(axes[1:], methods):
            _scatter(ax, shown[m], f"{m}, {s_shown} steps\nSW2 {results[m][str(s_shown)]['sliced_wasserstein']:.3f}",
                     log_t, "C0", lim=4.5)

    return out, plot


# name -> (panel function, number of axes, figure title)
_PANEL_SPECS: dict[str, tuple[Callable, int, str]] = {
    "fkc": (panel_fkc, 5, "(a) Feynman-Kac correctors: annealing and product of experts, weighted vs unweighted vs exact"),
    "inverse": (panel_inverse, 5, "(b) Inverse problem y = A x + noise: ensemble, twisted SMC and DPS vs the exact posterior"),
    "dmcmc": (panel_dmcmc, 4, "(c) Denoising Langevin Gibbs vs a plain integrator at equal NFE"),
    "privacy": (panel_privacy, 2, "(d) Bayesian epsilon posterior vs the Clopper-Pearson interval"),
    "integrators": (panel_integrators, 6, "(e) Reverse-diffusion integrators on the 8-mode ring"),
}


def _figure(path: Path, plots: dict[str, Callable], summary: dict) -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(plots)
    fig = plt.figure(figsize=(19, 4.1 * len(names)), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(names), 1))
    for sf, name in zip(subs, names):
        _, k, title = _PANEL_SPECS[name]
        axes = sf.subplots(1, k, gridspec_kw={"width_ratios": [3, 1]} if name == "privacy" else None)
        checks = summary["panels"][name]["checks"]
        ok = sum(c["passed"] for c in checks)
        sf.suptitle(f"{title}  [{ok}/{len(checks)} checks pass]", fontsize=11, fontweight="bold", x=0.01, ha="left")
        plots[name](np.atleast_1d(axes))
    fig.savefig(path, dpi=72)
    plt.close(fig)


def run_demo(
    out_dir: str | os.PathLike = "probkit-demo",
    *,
    only: tuple[str, ...] | None = None,
    size: str = "default",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the tour (or the panels in ``only``); writes ``tour.png`` and ``summary.json`` into
    ``out_dir`` and returns the summary."""
    panels = PANELS if only is None else tuple(only)
    if not panels or any(p not in PANELS for p in panels):
        raise ValueError(f"`only` must name panels among {PANELS}, got {list(panels)}")
    cfg = SIZES[_checks.choice("size", size, tuple(SIZES))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(panels), desc="probkit demo", disable=not progress, file=sys.stderr)
    t_all, c_all = time.perf_counter(), time.process_time()
    summary: dict[str, Any] = {"size": size, "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                               "seed": seed, "panels": {}}
    plots = {}
    for i, name in enumerate(panels):
        bar.set_postfix_str(name)
        tol = {k: v * _TINY_SCALE.get(k, 1.0) if size == "tiny" else v for k, v in TOLERANCES[name].items()}
        t0, c0 = time.perf_counter(), time.process_time()
        res, plot = _PANEL_SPECS[name][0](jax.random.PRNGKey(seed * 100 + PANELS.index(name)), cfg, tol)
        res.update(tolerances=tol, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                   passed=all(c["passed"] for c in res["checks"]))
        summary["panels"][name] = res
        plots[name] = plot
        bar.update()
    bar.close()
    t_fig = time.perf_counter()
    _figure(out / "tour.png", plots, summary)
    summary["figure_seconds"] = time.perf_counter() - t_fig
    summary.update(backend=jax.default_backend(), platform=platform.platform(),
                   total_seconds=time.perf_counter() - t_all, total_cpu_seconds=time.process_time() - c_all,
                   compilation_cache=jax.config.jax_compilation_cache_dir)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """One line per check, grouped by panel."""
    lines = []
    for name, res in summary["panels"].items():
        lines.append(f"{_PANEL_SPECS[name][2]} ({res['seconds']:.1f} s)\n  metric: {res['metric']}")
        for c in res["checks"]:
            lines.append(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['name']}: {c['value']:.3g} (bound {c['bound']:.3g})")
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.cache_dir is not None:  # otherwise the CLI's default cache (probkit.enable_compilation_cache)
        if args.cache_dir:
            from probkit import enable_compilation_cache

            enable_compilation_cache(args.cache_dir, min_compile_time_secs=0.0)
        else:
            jax.config.update("jax_compilation_cache_dir", None)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip()) if args.only else None
    summary = run_demo(args.out, only=only, size=args.size, seed=args.seed, progress=not args.quiet)
    print(format_summary(summary))
    print(f"wrote {Path(args.out) / 'tour.png'} and {Path(args.out) / 'summary.json'} "
          f"({summary['total_seconds']:.1f} s on {summary['backend']})")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``probkit`` CLI."""
    p = subparsers.add_parser("demo", help="a tour of probkit on exact 2-D problems; writes tour.png and summary.json",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="probkit-demo", help="output folder (default: ./probkit-demo)")
    p.add_argument("--only", default="", help=f"comma-separated panels among {','.join(PANELS)} (default: all)")
    p.add_argument("--size", default="default", choices=tuple(SIZES), help="problem size (tiny: the test suite's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cache-dir", default=None,
                   help="JAX compilation cache folder, so later runs skip compiling ('' to disable; "
                        "default: the CLI's, $PROBKIT_CACHE_DIR or ~/.cache/probkit/jax)")
    p.set_defaults(func=_cmd_demo)
