"""Temperature annealing of LJ-13 with Feynman-Kac correctors (Skreta et al. 2025, arXiv 2503.02819, §5.2).

A score model trained at T = 2 (the shipped EGNN ``probkit.models.boltzmann.load_pretrained()``)
is annealed to T = 1.5 and T = 1.0 (``beta = 2 / T``) with ``probkit.fkc.anneal`` on the
centre-of-mass-free internal coordinates (36 per configuration). Compared, at the same number of
particles and steps:

* ``fkc``: Feynman-Kac weights + adaptive systematic resampling (ESS < N/2), noise eta = 1 (x g),
  on each time grid of ``--grids`` (the first is the main result);
* ``sde``: the same proposal without weights (``weighted=False``: the plain scaled-score SDE);
* ``fkc_anneal``: ``fkc.anneal`` with its defaults (noise eta = (2 - t) g, Hilbert-ordered
  systematic resampling every step), and ``sde_eta2-t``, its proposal without weights;
* ``<method>+mala<M>`` (``--tail M``): the exact-energy MCMC corrector at t = 0,
  ``probkit.models.boltzmann.mcmc_refine`` (resample by weight, then M MALA steps on exp(-E/T),
  half adapting the step size), applied alike to the weighted and unweighted runs;
* ``fkc_langevin`` (``--langevin``): FKC with an unadjusted Langevin corrector on the annealed
  path (step ``0.1 sigma_t^2 / beta``; one more score call per step);
* ``mcmc_noise_<NFE>``: BlackJAX MALA on the exact energy started from the diffusion prior N(0, I),
  one chain per particle, with as many gradient evaluations per chain as ``sde+mala<M>`` spends
  evaluations per particle (steps + M; half adapting the step size), and 10x the diffusion steps;
* the exact-energy reference (BlackJAX HMC, ``benchmarks/data/lj13_T*.npz``); ``ref_split`` is the
  W1 between its two halves (the noise floor of the metric).

Metrics: Wasserstein-1 between the (weighted) sample and the reference of the energies and of
all interatomic distances, the final Kish ESS, wall time (first call, compile included, and a
second call), and wall time per effective sample.

Usage::

    python benchmarks/boltzmann.py --quick          # CPU smoke test
    python benchmarks/boltzmann.py --figure docs/img/boltzmann_gpu.png   # GPU docs run: N = 8192, 500 steps, 8 seeds

Writes ``benchmarks/results/boltzmann_<platform>.json`` (and a figure with ``--figure``).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import wasserstein_distance

from probkit import fkc
from probkit.models import boltzmann as bz
from probkit.diffusion import time_grid
from probkit.smc import correctors, run_smc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
SYSTEM = bz.LJ13
T_TRAIN = 2.0


def load_reference(temp: float) -> np.ndarray:
    return np.load(DATA / f"lj13_T{temp:.1f}.npz")["positions"].astype(np.float64)


def observables(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies ``(N,)`` and interatomic distances ``(N, 78)``."""
    return np.asarray(SYSTEM.energy(x), np.float64), np.asarray(SYSTEM.distances(x), np.float64)


def metrics(x: np.ndarray, ref: tuple[np.ndarray, np.ndarray], weights: np.ndarray | None = None) -> dict:
    e, d = observables(x)
    e_ref, d_ref = ref
    w = np.ones(len(e)) if weights is None else np.asarray(weights, np.float64)
    ok = np.isfinite(e) & np.all(np.isfinite(d), 1)
    w = w * ok
    w = w / w.sum()
    wd = np.repeat(w[ok], d.shape[1])
    return {
        "w1_energy": float(wasserstein_distance(e[ok], e_ref, u_weights=w[ok])),
        "w1_distance": float(wasserstein_distance(d[ok].ravel(), d_ref.ravel(), u_weights=wd)),
        "energy_mean": float(np.sum(w[ok] * e[ok])), "kish_ess": float(1.0 / np.sum(w**2)),
        "nonfinite": int((~ok).sum()),
    }


def keep_for_figure(figdata: dict, prefix: str, x: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Energies, distances and normalised weights of one sample, for the histograms."""
    e, d = observables(x)
    figdata[f"{prefix}_energy"], figdata[f"{prefix}_distance"] = e, d.ravel()
    figdata[f"{prefix}_weights"] = np.full(len(e), 1.0 / len(e)) if weights is None else weights


def timed(fn):
    """``(fn(), seconds)``, waiting for every array of the result."""
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return out, time.perf_counter() - t0


class FKCOut(NamedTuple):
    particles: jax.Array
    log_weights: jax.Array
    ess: jax.Array
    resampled: jax.Array
    log_evidence: jax.Array


# fkc.anneal's own defaults: noise eta = (2 - t) g, Hilbert-ordered systematic resampling every step
ANNEAL_DEFAULTS = {"eta": None, "resampling": "hilbert", "ess_threshold": 1.0}


def make_fkc_runner(model, beta, n, steps, weighted, corrector=None, grid="quadratic", eta=1.0,
                    resampling="systematic", ess_threshold=0.5):
    """``key -> FKCOut``: ``probkit.fkc.anneal`` split into its two halves, the Feynman-Kac model
    (``fkc.fkc_model``, built once) and the engine (``probkit.smc.run_smc``), so that every seed
    reuses one compiled program and a second call times the run alone."""
    score = bz.score_fn(model)
    fk, target = fkc.fkc_model(model.process, (score,), (beta,), (SYSTEM.internal_dim,), eta=eta, weighted=weighted)
    ts = time_grid(model.process, steps, grid)

    def run(key):
        res = run_smc(key, fk, n, ts, target=target, resampling=resampling, ess_threshold=ess_threshold,
                      corrector=corrector)
        return FKCOut(res.particles, res.log_weights, res.ess, res.resampled, res.log_evidence)

    nfe = steps * (1 + (corrector.nfe if corrector is not None else 0))
    return run, nfe


def run_mcmc_noise(key, temp, n, steps):
    k0, k1 = jax.random.split(key)
    y0 = jax.random.normal(k0, (n, SYSTEM.internal_dim))
    warm = max(1, steps // 2)
    r = bz.mcmc_sample(k1, SYSTEM, temp, n, 1, thin=max(1, steps - warm), num_warmup=warm, method="mala",
                       step_size=1e-3, init=y0, adapt_rounds=10)
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", type=float, nargs="+", default=[1.5, 1.0])
    p.add_argument("--num-particles", type=int, default=8192)
    p.add_argument("--num-steps", type=int, default=500)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--tail", type=int, nargs="*", default=[400], help="MALA steps of the t = 0 corrector")
    p.add_argument("--langevin", action="store_true", help="also FKC with a Langevin corrector on the path")
    p.add_argument("--grids", nargs="+", default=["quadratic"],
                   help="time grids (probkit.diffusion.time_grid); the first one is the main result and the figure")
    p.add_argument("--model", type=Path, default=None, help="saved model (default: the shipped lj13_T2)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--figure", type=Path, default=None)
    p.add_argument("--samples-out", type=Path, default=None, help="npz of energies/distances for figures")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.num_particles, args.num_steps, args.seeds, args.targets, args.tail = 64, 20, 1, [1.5], [10]
    model = bz.load_pretrained() if args.model is None else bz.load_model(args.model)
    backend = jax.default_backend()
    print(f"platform={backend} ({jax.devices()[0].device_kind}) model={model.arch} N={args.num_particles} "
          f"K={args.num_steps}", flush=True)
    n, steps = args.num_particles, args.num_steps
    if args.quick:  # the split runner is fkc.anneal
        a = fkc.anneal(jax.random.PRNGKey(0), model.process, bz.score_fn(model), 1.5, n, steps, shape=(36,))
        b = make_fkc_runner(model, 1.5, n, steps, True, grid="uniform", **ANNEAL_DEFAULTS)[0](jax.random.PRNGKey(0))
        assert np.allclose(np.asarray(a.particles), np.asarray(b.particles), atol=1e-4), "runner != fkc.anneal"
    rows, figdata = [], {}
    for temp in [T_TRAIN] + list(args.targets):
        beta = T_TRAIN / temp
        ref_x = load_reference(temp)
        ref = observables(ref_x)
        half = len(ref_x) // 2
        split = metrics(ref_x[:half], observables(ref_x[half:]))
        rows.append({"target_T": temp, "beta": beta, "method": "ref_split", "seed": 0, "nfe": 0, **split})
        figdata[f"T{temp}_ref_energy"], figdata[f"T{temp}_ref_distance"] = ref[0], ref[1].ravel()
        # at beta = 1 the FK weights vanish: "sde" is the model's own reverse SDE
        methods = ["sde"] if temp == T_TRAIN else (["fkc", "sde", "fkc_anneal", "sde_eta2-t"]
                                                   + ["fkc_langevin"] * args.langevin)
        refine_first = {}
        for m_tail in args.tail if temp != T_TRAIN else []:  # compile the t = 0 corrector once per length
            y_ref = jnp.asarray(bz.to_internal(ref_x[:n], 13, 3))
            refine_first[m_tail] = max(timed(lambda lw=lw: bz.mcmc_refine(jax.random.PRNGKey(0), SYSTEM, temp, y_ref,
                                                                          m_tail, log_weights=lw))[1]
                                       for lw in (None, jnp.zeros(len(y_ref))))
        for grid, method in [(g, m) for g in args.grids for m in methods]:
            corr = None
            if method == "fkc_langevin":
                corr = correctors.langevin(lambda t, b=beta: 0.1 * model.process.sigma(t) ** 2 / b)
            opts = ANNEAL_DEFAULTS if method == "fkc_anneal" else {"eta": None} if method == "sde_eta2-t" else {}
            run, nfe = make_fkc_runner(model, beta, n, steps, not method.startswith("sde"), corr, grid, **opts)
            wall_first = None
            for seed in range(args.seeds):
                key = jax.random.PRNGKey(seed)
                try:
                    if wall_first is None:  # first call: compile + run
                        _, wall_first = timed(lambda: run(jax.random.PRNGKey(10_000)))
                    res, wall = timed(lambda: run(key))
                except ValueError as err:  # the engine's check: all-zero weights or non-finite values
                    rows.append({"target_T": temp, "beta": beta, "method": method, "grid": grid, "seed": seed,
                                 "error": str(err)})
                    print(f"T={temp} {method} {grid} seed={seed}: FAILED {err}", flush=True)
                    continue
                if not bool(jnp.all(jnp.isfinite(res.particles))):
                    rows.append({"target_T": temp, "beta": beta, "method": method, "grid": grid, "seed": seed,
                                 "error": "non-finite particles"})
                    print(f"T={temp} {method} seed={seed}: FAILED (non-finite particles)", flush=True)
                    continue
                x = np.asarray(bz.from_internal(res.particles, 13, 3))
                w = None if method.startswith("sde") else np.exp(np.asarray(res.log_weights, np.float64))
                m = metrics(x, ref, w)
                row = {"target_T": temp, "beta": beta, "method": method, "grid": grid, "seed": seed, "nfe": int(nfe),
                       "wall_s": wall, "wall_first_s": wall_first, "min_ess": float(jnp.min(res.ess)),
                       "num_resampled": int(jnp.sum(res.resampled)), "log_evidence": float(res.log_evidence),
                       "wall_per_effective_sample_ms": 1e3 * wall / max(m["kish_ess"], 1.0), **m}
                rows.append(row)
                if seed == 0 and grid == args.grids[0]:
                    keep_for_figure(figdata, f"T{temp}_{method}", x, w)
                print(f"T={temp} {method:12s} {grid:9s} seed={seed}: W1(E)={m['w1_energy']:.3f} W1(d)={m['w1_distance']:.4f} "
                      f"ESS={m['kish_ess']:.0f} <E>={m['energy_mean']:.2f} (ref {ref[0].mean():.2f}) "
                      f"wall={wall:.2f}s (first {wall_first:.2f}s)", flush=True)
                for m_tail in refine_first:  # the exact-energy MCMC corrector at t = 0, same for every method
                    lw = None if w is None else res.log_weights
                    r, wall_tail = timed(lambda: bz.mcmc_refine(jax.random.PRNGKey(200 + seed), SYSTEM, temp,
                                                                res.particles, m_tail, log_weights=lw))
                    xt = np.asarray(bz.from_internal(r.samples[:, -1], 13, 3))
                    mt = metrics(xt, ref)
                    name = f"{method}+mala{m_tail}"
                    rows.append({"target_T": temp, "beta": beta, "method": name, "grid": grid, "seed": seed,
                                 "nfe": int(nfe) + m_tail, "wall_s": wall + wall_tail,
                                 "wall_first_s": wall_first + refine_first[m_tail],
                                 "acceptance": float(r.acceptance),
                                 "wall_per_effective_sample_ms": 1e3 * (wall + wall_tail) / n, **mt})
                    if seed == 0 and grid == args.grids[0]:
                        keep_for_figure(figdata, f"T{temp}_{name}", xt)
                    print(f"T={temp} {name:18s} seed={seed}: W1(E)={mt['w1_energy']:.3f} W1(d)={mt['w1_distance']:.4f} "
                          f"<E>={mt['energy_mean']:.2f} acc={float(r.acceptance):.2f} wall={wall_tail:.2f}s", flush=True)
        if temp == T_TRAIN:
            continue
        for budget in sorted({steps + m for m in args.tail} | {10 * steps}):
            key = jax.random.PRNGKey(100 + budget)
            _, wall_first = timed(lambda: run_mcmc_noise(key, temp, n, budget))  # compile + run
            r, wall = timed(lambda: run_mcmc_noise(key, temp, n, budget))
            x = np.asarray(bz.from_internal(r.samples[:, -1], 13, 3))
            m = metrics(x, ref)
            method = f"mcmc_noise_{budget}"
            rows.append({"target_T": temp, "beta": beta, "method": method, "seed": 0, "nfe": budget,
                         "wall_s": wall, "wall_first_s": wall_first, "acceptance": float(r.acceptance),
                         "step_size": r.step_size, "wall_per_effective_sample_ms": 1e3 * wall / n, **m})
            keep_for_figure(figdata, f"T{temp}_{method}", x)
            print(f"T={temp} {method:12s}: W1(E)={m['w1_energy']:.3f} W1(d)={m['w1_distance']:.4f} "
                  f"<E>={m['energy_mean']:.2f} acc={float(r.acceptance):.2f} wall={wall:.2f}s", flush=True)

    summary = summarise(rows)
    out = {"platform": backend, "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
           "python": platform.python_version(), "model": model.arch, "num_particles": n, "num_steps": steps,
           "seeds": args.seeds, "grids": args.grids, "summary": summary, "rows": rows}
    path = args.out or ROOT / "benchmarks" / "results" / f"boltzmann_{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)
    print_table(summary)
    if args.samples_out is not None:
        np.savez_compressed(args.samples_out, **{k: np.asarray(v, np.float32) for k, v in figdata.items()})
    if args.figure is not None:
        make_figure(figdata, [T_TRAIN] + list(args.targets), args.figure, steps, args.tail[0] if args.tail else None)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of each (target, method)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["target_T"], r["method"], r.get("grid", "-")), []).append(r)
    out = []
    for (temp, method, grid), rs in groups.items():
        s = {"target_T": temp, "method": method, "grid": grid, "runs": len(rs), "nfe": rs[0].get("nfe", 0)}
        for k in ("w1_energy", "w1_distance", "kish_ess", "energy_mean", "wall_s", "wall_first_s",
                  "wall_per_effective_sample_ms", "log_evidence", "min_ess"):
            if k in rs[0]:
                v = np.array([r[k] for r in rs], float)
                s[k], s[k + "_sd"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
        out.append(s)
    return out


def print_table(summary: list[dict]) -> None:
    print(f"{'T':>4} {'method':14s} {'grid':9s} {'NFE':>5} {'W1(E)':>14} {'W1(d)':>16} {'ESS':>7} {'<E>':>8} {'wall s':>7} "
          f"{'ms/eff.sample':>13}")
    for s in summary:
        w1e = f"{s['w1_energy']:.3f}±{s.get('w1_energy_sd', 0):.3f}"
        w1d = f"{s['w1_distance']:.4f}±{s.get('w1_distance_sd', 0):.4f}"
        print(f"{s['target_T']:>4} {s['method']:14s} {s['grid']:9s} {s['nfe']:>5} {w1e:>14} {w1d:>16} {s.get('kish_ess', 0):>7.0f} "
              f"{s.get('energy_mean', 0):>8.2f} {s.get('wall_s', 0):>7.2f} {s.get('wall_per_effective_sample_ms', 0):>13.3f}")


def make_figure(figdata: dict, temps: list[float], path: Path, steps: int, tail: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"ref": ("k", "reference (HMC)", "-"), "fkc": ("C0", "FKC", "-"), "sde": ("C3", "scaled-score SDE", "-")}
    if tail:
        styles.update({f"fkc+mala{tail}": ("C0", f"FKC + {tail} MALA", "--"),
                       f"sde+mala{tail}": ("C3", f"SDE + {tail} MALA", "--"),
                       f"mcmc_noise_{steps + tail}": ("C1", f"MALA from noise ({steps + tail} steps)", "-")})
    fig, axes = plt.subplots(2, len(temps), figsize=(4.2 * len(temps), 6.5))
    for j, temp in enumerate(temps):
        for row, obs in enumerate(("energy", "distance")):
            ax = axes[row, j]
            ref = figdata[f"T{temp}_ref_{obs}"]
            lo, hi = np.percentile(ref, [0.2, 99.8])
            span = hi - lo
            bins = np.linspace(lo - 0.3 * span if obs == "energy" else 0.5, hi + 0.3 * span, 70)
            for name, (c, label, ls) in styles.items():
                k = f"T{temp}_{name}_{obs}"
                if k not in figdata:
                    continue
                v = figdata[k]
                w = None
                if name != "ref":
                    w = figdata[f"T{temp}_{name}_weights"]
                    if obs == "distance":
                        w = np.repeat(w, 78)
                ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, weights=w, density=True, histtype="step",
                        color=c, ls=ls, lw=2.0 if name == "ref" else 1.3, label=label)
            ax.set_xlabel("energy (outliers clipped into the end bins)" if obs == "energy" else "interatomic distance")
            ax.set_title(f"T = {temp}" + (" (training T)" if temp == T_TRAIN else f" (beta = {T_TRAIN / temp:.2f})"))
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote", path)


if __name__ == "__main__":
    main()
