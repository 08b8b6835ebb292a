"""Benchmark of probkit.inverse on the MCGdiff mixture problem with an exact posterior.

Cardoso, Janati El Idrissi, Le Corff, Moulines (2023, MCGdiff, arXiv 2308.07983): a
25-component Gaussian-mixture prior in d dimensions (means (8i, 8j, 8i, 8j, ...),
i, j ∈ {-2..2}, unit covariances, random weights), y = A x + N(0, s_y² I) with a random
A ∈ R^{d_y × d} (standard normal entries) and x drawn from the prior. The posterior is the
mixture ``GaussianMixture.condition(A, y, s_y)``; we report the sliced Wasserstein distance
(``probkit.diagnostics.metrics.sliced_wasserstein``) between each method's (resampled) output
and exact posterior draws, beside the reference-vs-reference distance (the MC floor).

Methods at equal NFE per particle (exact mixture score: a VJP through it is counted as one
evaluation, so DPS and TDS run NFE/2 steps): ``inverse.ensemble`` (Chen et al. 2025; default
denoised twist with telescoped weights), ``ensemble_before`` (the Gaussian likelihood path with
Chen et al.'s rate × h weights, the sampler before issue 11), ``inverse.dps`` (Chung et al. 2023) and ``inverse.twisted_smc`` (Wu et al.
2023). Wall time: the compiled run (compile excluded: each model object runs once to compile, then
is timed on a fresh key).

Usage::

    python benchmarks/inverse.py --quick     # CPU smoke run: d = 8, 80; d_y = 1, 2; 2 seeds
    python benchmarks/inverse.py             # d = 8, 80, 800; d_y = 1, 2, 4; 5 seeds

Writes ``benchmarks/results/inverse_<platform>.json``, prints a table and saves
``benchmarks/results/inverse_<platform>.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probkit import inverse
from probkit.diagnostics.metrics import sliced_wasserstein
from probkit.diffusion import VP, time_grid
from probkit.models import GaussianMixture
from probkit.smc import run_smc

METHODS = ("ensemble_before", "ensemble", "dps", "twisted_smc")


def mcgdiff_prior(key, d: int) -> GaussianMixture:
    """25 components, means (8i, 8j, 8i, 8j, ...), unit (diagonal) covariances, random weights."""
    ii, jj = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij")
    base = np.stack([8.0 * ii.ravel(), 8.0 * jj.ravel()], 1)
    means = np.tile(base, (1, (d + 1) // 2))[:, :d]
    w = jax.random.uniform(key, (25,))
    return GaussianMixture(w / w.sum(), jnp.asarray(means), jnp.ones((25, d)))


def problem(seed: int, d: int, dy: int, sy: float):
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed), 4)
    gm = mcgdiff_prior(k1, d)
    A = jax.random.normal(k2, (dy, d))
    y = A @ gm.sample(k3, 1)[0] + sy * jax.random.normal(k4, (dy,))
    return gm, A, y


def make_runner(name, proc, gm, lik, n, nfe):
    """A function key -> WeightedParticles that reuses ONE Feynman-Kac model object, so the
    engine's jitted scan compiles once and later calls measure the run alone. (The convenience
    functions inverse.ensemble / dps / twisted_smc build exactly these models.)"""
    sf, lp = gm.score_fn(proc), gm.logdensity_fn(proc)
    if name == "ensemble_before":  # Chen et al.'s rate x h weights (the sampler before issue 11)
        ts = time_grid(proc, nfe)
        model, target = inverse.ensemble_model(proc, sf, inverse.gaussian_path(lik, proc), lik.x_shape, logdensity_fn=lp,
                                               weights="rate")
        return lambda key: run_smc(key, model, n, ts, target=target, nfe_per_step=1)
    if name == "ensemble":  # denoised twist, telescoped weights: 1 score at the start + 1 per step
        ts = time_grid(proc, nfe - 1)
        model, target = inverse.ensemble_model(proc, sf, inverse.gaussian_path(lik, proc), lik.x_shape, logdensity_fn=lp,
                                               twist="denoised", t_end=float(ts[-1]))
        return lambda key: run_smc(key, model, n, ts, target=target, nfe_per_step=1, nfe_init=1)
    if name == "dps":
        ts = time_grid(proc, nfe // 2)
        model = inverse.dps_model(proc, sf, lik)
        return lambda key: run_smc(key, model, n, ts, ess_threshold=0.0, nfe_per_step=2)
    ts = time_grid(proc, nfe // 2 - 1)
    model, target = inverse.tds_model(proc, sf, lik, float(ts[-1]), logdensity_fn=lp)
    return lambda key: run_smc(key, model, n, ts, target=target, nfe_per_step=2, nfe_init=2)


def _positions(particles):
    return particles.x if hasattr(particles, "x") else particles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small CPU smoke run")
    ap.add_argument("--dims", type=int, nargs="*", default=None)
    ap.add_argument("--dys", type=int, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--particles", type=int, default=None)
    ap.add_argument("--nfe", type=int, default=None)
    ap.add_argument("--noise", type=float, default=0.5, help="observation noise s_y")
    ap.add_argument("--out", default=None)
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new problems after this many seconds")
    args = ap.parse_args()
    methods = tuple(args.methods)
    t_begin = time.perf_counter()
    dims = args.dims or ([8, 80] if args.quick else [8, 80, 800])
    dys = args.dys or ([1, 2] if args.quick else [1, 2, 4])
    seeds = args.seeds or (2 if args.quick else 5)
    n = args.particles or (1000 if args.quick else 4096)
    nfe = args.nfe or (200 if args.quick else 1000)
    n_ref = n
    proc = VP()
    rows = []
    for d in dims:
        for dy in dys:
            for seed in range(seeds):
                gm, A, y = problem(seed, d, dy, args.noise)
                post = gm.condition(A, y, args.noise)
                lik = inverse.gaussian(A, y, args.noise)
                ref = post.sample(jax.random.PRNGKey(10_000 + seed), n_ref)
                ref2 = post.sample(jax.random.PRNGKey(20_000 + seed), n_ref)
                k_sw = jax.random.PRNGKey(7)
                log_z = float(gm.noised(proc, proc.t_min).log_marginal_likelihood(A, y, args.noise))
                row = {"d": d, "d_y": dy, "seed": seed, "num_particles": n, "nfe": nfe,
                       "sw_ref_ref": float(sliced_wasserstein(ref, ref2, k_sw)), "log_z_exact": log_z}
                if time.perf_counter() - t_begin > args.budget_s:
                    print(f"budget spent: skipping d={d} d_y={dy} seed={seed}", flush=True)
                    continue
                for name in methods:
                    runner = make_runner(name, proc, gm, lik, n, nfe)
                    out = runner(jax.random.PRNGKey(seed))  # compile
                    jax.block_until_ready(out.log_weights)
                    t0 = time.perf_counter()
                    out = runner(jax.random.PRNGKey(seed + 1))
                    jax.block_until_ready(out.log_weights)
                    wall = time.perf_counter() - t0
                    out = out._replace(particles=_positions(out.particles))
                    xs = out.resample(jax.random.PRNGKey(3), n)
                    row[name] = {"sw": float(sliced_wasserstein(xs, ref, k_sw)), "time_s": wall, "nfe": int(out.nfe),
                                 "min_ess": float(jnp.min(out.ess)), "log_z_err": float(out.log_evidence) - log_z}
                rows.append(row)
                print(f"d={d:4d} d_y={dy} seed={seed}  ref {row['sw_ref_ref']:.3f}  " +
                      "  ".join(f"{m} {row[m]['sw']:.3f} [{row[m]['log_z_err']:+.2f}] ({row[m]['time_s']:.2f}s)"
                                for m in methods if m in row), flush=True)

    # summary table: mean ± sd over seeds
    print("\n| d | d_y | ref-ref SW | " + " | ".join(f"{m} SW | {m} log p(y) err | {m} time (s)" for m in methods) + " |")
    print("|---|---|---|" + "---|---|---|" * len(methods))
    summary = []
    for d in dims:
        for dy in dys:
            sel = [r for r in rows if r["d"] == d and r["d_y"] == dy]
            if not sel:
                continue
            ent = {"d": d, "d_y": dy, "sw_ref_ref": float(np.mean([r["sw_ref_ref"] for r in sel]))}
            cells = [f"{ent['sw_ref_ref']:.3f}"]
            for m in methods:
                sw = np.array([r[m]["sw"] for r in sel])
                tm = np.array([r[m]["time_s"] for r in sel])
                le = np.array([r[m]["log_z_err"] for r in sel])
                ent[m] = {"sw_mean": float(sw.mean()), "sw_sd": float(sw.std()), "time_mean": float(tm.mean()),
                          "log_z_err_rms": float(np.sqrt(np.mean(le**2)))}
                cells += [f"{sw.mean():.3f} ± {sw.std():.3f}", f"{ent[m]['log_z_err_rms']:.2f}", f"{tm.mean():.2f}"]
            summary.append(ent)
            print(f"| {d} | {dy} | " + " | ".join(cells) + " |")

    platform_name = jax.default_backend()
    out_path = Path(args.out) if args.out else Path(__file__).parent / "results" / f"inverse_{platform_name}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"platform": platform_name, "device": jax.devices()[0].device_kind, "host": platform.node(),
            "noise_std": args.noise, "num_particles": n, "nfe": nfe, "seeds": seeds, "quick": args.quick,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "methods": list(methods)}
    out_path.write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=1))
    print(f"wrote {out_path}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        ents = [e for e in summary if e["d"] == d]
        xs = np.arange(len(ents))
        for i, m in enumerate(methods):
            ax.bar(xs + (i - 1.5) * 0.2, [e[m]["sw_mean"] for e in ents], 0.2,
                   yerr=[e[m]["sw_sd"] for e in ents], label=m)
        ax.plot(xs, [e["sw_ref_ref"] for e in ents], "k_", markersize=20, label="ref vs ref")
        ax.set_xticks(xs, [f"d_y={e['d_y']}" for e in ents])
        ax.set_title(f"d = {d}  (NFE {nfe}, N {n})")
        ax.set_ylabel("sliced Wasserstein to exact posterior")
        ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path.with_suffix(".png"), dpi=120)
    print(f"wrote {out_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
