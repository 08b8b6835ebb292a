"""Convergence study of the ensemble posterior sampler on random Gaussian-mixture problems.

Chen, Ren, Min, Ying, Izzo (2025, arXiv 2506.03979): the ensemble sampler is consistent as the
number of particles N and of steps K grow. Here we measure how fast, against exact answers:
a random K-component Gaussian-mixture prior in d dimensions (exact noised scores and log
densities), y = A x + N(0, s_y² I) with a dense, masked or blurred (periodic 2-D) operator A.
The target of every sampler run to t_min is p_{t_min}(x) l(x) (p_{t_min}: the prior noised to
t_min = 1e-3), whose evidence log ∫ p_{t_min} l and posterior are exact
(``GaussianMixture.noised(...).log_marginal_likelihood`` / ``.condition``: a Kalman update per
component).

Metrics per run: error of ``log_evidence`` in log p(y) (mean over seeds = bias, sd over
seeds = Monte Carlo error) and sliced W2 between the resampled particles and exact posterior
draws (beside the exact-vs-exact floor at the same N). Sweeps:

* steps K ∈ {100, ..., 3200} at fixed N (the order in K),
* N ∈ {2^10, ..., 2^17} at fixed K (the N^(-1/2) rate of the log p(y) error),

for the samplers

* ``before``: main's sampler (Chen et al.'s rate × h weights, guided Euler-Maruyama step),
* ``guided``: telescoped weights (log l_{t'}(x') - log l_t(x) plus the exact log-ratio of
  the prior chain's Gaussian kernel to the guided proposal's),
* ``adapted``: the prior chain's kernel times l_{t'} sampled exactly (the locally optimal
  proposal of the Gaussian likelihood path), weight ∫ K l_{t'} / l_t,
* ``denoised`` (the new default of ``inverse.ensemble``): the path's likelihood evaluated at
  Tweedie's denoised x̂_0(x) = (x + σ_t² s(x, t))/α_t, with the score cached from the
  previous step (1 NFE per step + 1 at the start), guided proposal with ∇ log l̃ / α_t (no
  gradient through the score) and telescoped exact weights,
* ``tds``: twisted SMC (Wu et al. 2023) at equal NFE (K/2 steps: a score + a VJP per step).

Usage::

    python benchmarks/inverse_convergence.py --quick     # CPU: d <= 10, N <= 4096
    python benchmarks/inverse_convergence.py             # GPU: full sweeps

Writes ``benchmarks/results/inverse_convergence_<cpu|gpu>.json`` and a plot
``docs/img/inverse_convergence.png`` (``--plot`` path).
"""
from __future__ import annotations

import argparse
import json
import math
import os
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

SAMPLERS = ("before", "guided", "adapted", "denoised", "tds")
N_SWEEP = ("before", "denoised", "tds")


class Problem:
    """A random mixture inverse problem with its exact target at t_min."""

    def __init__(self, seed: int, d: int, kind: str, noise: float, num_components: int = 5):
        rng = np.random.default_rng(seed)
        self.seed, self.d, self.kind, self.noise = seed, d, kind, noise
        k = num_components
        means = 2.5 * rng.standard_normal((k, d))
        # random full covariances: Q diag(e) Q^T with eigenvalues in [0.1, 1]
        covs = []
        for _ in range(k):
            q, _ = np.linalg.qr(rng.standard_normal((d, d)))
            covs.append((q * rng.uniform(0.1, 1.0, d)) @ q.T)
        w = rng.dirichlet(2.0 * np.ones(k))
        self.gm = GaussianMixture(jnp.asarray(w), jnp.asarray(means), jnp.asarray(np.stack(covs)))
        if kind == "dense":
            m = max(1, d // 2)
            self.op = inverse.operators.dense(rng.standard_normal((m, d)) / math.sqrt(d) * 2.0)
            self.x_shape = (d,)
        elif kind == "mask":
            obs = np.zeros(d, bool)
            obs[rng.choice(d, max(1, d // 2), replace=False)] = True
            self.op = inverse.operators.mask(obs)
            self.x_shape = (d,)
        elif kind == "blur":
            side = int(round(math.sqrt(d)))
            if side * side != d:
                raise ValueError(f"blur problems need a square d, got {d}")
            self.op = inverse.operators.gaussian_blur((side, side), 0.7, 3)
            self.x_shape = (side, side)
        else:
            raise ValueError(f"unknown operator kind {kind!r}")
        eye = jnp.eye(d).reshape((d, *self.x_shape))
        self.A = jax.vmap(lambda e: jnp.ravel(self.op.apply(e)))(eye).T  # (m, d)
        x_true = self.gm.sample(jax.random.PRNGKey(seed), 1)[0]
        self.y_flat = self.A @ x_true + noise * jnp.asarray(rng.standard_normal(self.A.shape[0]))
        self.y = self.y_flat.reshape(self.op.out_shape)
        self.lik = inverse.gaussian(self.op, self.y, noise)
        self.proc = VP()
        t_min = self.proc.t_min
        self.gm_min = self.gm.noised(self.proc, t_min)
        self.post = self.gm_min.condition(self.A, self.y_flat, noise)
        self.log_z = float(self.gm_min.log_marginal_likelihood(self.A, self.y_flat, noise))
        self.log_py = float(self.gm.log_marginal_likelihood(self.A, self.y_flat, noise))
        sf, lp = self.gm.score_fn(self.proc), self.gm.logdensity_fn(self.proc)
        shape = self.x_shape
        self.score_fn = lambda x, t: jnp.reshape(sf(jnp.ravel(x), t), shape)
        self.logdensity_fn = lambda x, t: lp(jnp.ravel(x), t)

    def describe(self) -> dict:
        return {"seed": self.seed, "d": self.d, "operator": self.kind, "noise": self.noise,
                "d_y": int(self.A.shape[0]), "log_z_exact": self.log_z, "log_py_exact_t0": self.log_py}


def make_model(pb: Problem, sampler: str, nfe: int):
    """((model, target), ts, nfe_per_step, nfe_init) of a sampler at a budget of ``nfe`` score evaluations."""
    proc, lik = pb.proc, pb.lik
    path = inverse.gaussian_path(lik, proc)
    if sampler == "tds":
        ts = time_grid(proc, nfe // 2 - 1)
        model = inverse.tds_model(proc, pb.score_fn, lik, float(ts[-1]), logdensity_fn=pb.logdensity_fn)
        return model, ts, 2, 2
    ts = time_grid(proc, nfe)
    if sampler == "before":
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn, weights="rate")
    elif sampler == "guided":
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn,
                                       weights="transition", t_end=float(ts[-1]))
    elif sampler == "adapted":
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn,
                                       proposal="adapted", integrator="ddpm", t_end=float(ts[-1]))
    elif sampler == "adapted_em":
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn,
                                       proposal="adapted", t_end=float(ts[-1]))
    elif sampler in ("denoised", "denoised_ddpm"):
        ts = time_grid(proc, nfe - 1)
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn,
                                       twist="denoised", t_end=float(ts[-1]),
                                       integrator="ddpm" if sampler == "denoised_ddpm" else "euler_maruyama")
        return model, ts, 1, 1
    elif sampler == "guided_ddpm":
        model = inverse.ensemble_model(proc, pb.score_fn, path, pb.x_shape, logdensity_fn=pb.logdensity_fn,
                                       integrator="ddpm", t_end=float(ts[-1]))
    else:
        raise ValueError(sampler)
    return model, ts, 1, 0


def run_cell(pb: Problem, sampler: str, nfe: int, n: int, seeds: int, ref_key=0) -> dict:
    """``seeds`` independent runs: log Z errors, sliced W2 to exact posterior draws."""
    model, ts, per, init = make_model(pb, sampler, nfe)
    d = pb.d
    ref = pb.post.sample(jax.random.PRNGKey(10_000 + ref_key), n)
    ref2 = pb.post.sample(jax.random.PRNGKey(20_000 + ref_key), n)
    k_sw = jax.random.PRNGKey(7)

    def one(key, ref):
        out = run_smc(key, model[0], n, ts, target=model[1], nfe_per_step=per, nfe_init=init, check=False)
        pos = out.particles
        idx = jax.random.choice(jax.random.fold_in(key, 1), n, (n,), p=jnp.exp(out.log_weights))
        xs = jnp.reshape(pos, (n, d))[idx]
        return out.log_evidence, sliced_wasserstein(xs, ref, k_sw), jnp.min(out.ess)

    run = jax.jit(one)
    keys = jax.random.split(jax.random.PRNGKey(1000 * pb.seed + 17), seeds)
    t0 = time.perf_counter()
    res = [run(k, ref) for k in keys]
    jax.block_until_ready(res)
    wall = time.perf_counter() - t0
    lz = np.array([float(r[0]) for r in res])
    sw = np.array([float(r[1]) for r in res])
    err = lz - pb.log_z
    return {"sampler": sampler, "nfe": nfe, "N": n, "seeds": seeds,
            "log_z": lz.tolist(), "err_mean": float(np.nanmean(err)), "err_sd": float(np.nanstd(err, ddof=1)) if seeds > 1 else 0.0,
            "err_rms": float(np.sqrt(np.nanmean(err**2))), "sw": sw.tolist(), "sw_mean": float(np.nanmean(sw)),
            "sw_floor": float(sliced_wasserstein(ref2, ref, k_sw)), "min_ess": float(np.min([float(r[2]) for r in res])),
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    ap.add_argument("--steps", type=int, nargs="*", default=None)
    ap.add_argument("--ns", type=int, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--problems", default=None, help="comma list of d:kind:noise")
    ap.add_argument("--out", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--budget-s", type=float, default=1e9, help="skip the remaining cells after this many seconds")
    ap.add_argument("--replot", default=None, help="only redraw the plot of this JSON file")
    args = ap.parse_args()
    if args.replot:
        data = json.loads(Path(args.replot).read_text())
        plot(data["rows"], data["problems"], args.plot or str(Path(args.replot).with_suffix(".png")))
        return
    if args.quick:
        steps = args.steps or [100, 200, 400]
        ns = args.ns or [256, 1024, 4096]
        seeds = args.seeds or 4
        specs = args.problems or "6:dense:0.3,9:blur:0.1"
        n_fix, k_fix = 1024, 200
    else:
        steps = args.steps or [100, 200, 400, 800, 1600, 3200]
        ns = args.ns or [2**10, 2**11, 2**13, 2**15, 2**17]
        seeds = args.seeds or 6
        specs = args.problems or "2:dense:0.5,9:blur:0.2,25:mask:0.05,100:dense:0.1"
        n_fix, k_fix = 4096, 400
    problems = []
    for i, spec in enumerate(specs.split(",")):
        d, kind, noise = spec.split(":")
        problems.append(Problem(i + 1, int(d), kind, float(noise)))
    platform_name = "gpu" if jax.default_backend() == "gpu" else "cpu"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"inverse_convergence_{platform_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"platform": jax.default_backend(), "device": jax.devices()[0].device_kind, "steps": steps, "ns": ns,
            "seeds": seeds, "n_fixed": n_fix, "steps_fixed": k_fix, "quick": args.quick,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "complete": False}
    rows = []
    t_start = time.perf_counter()

    def save():
        out.write_text(json.dumps({"meta": meta, "problems": [p.describe() for p in problems], "rows": rows}, indent=1))

    def show(r):
        print(f"  {r['sampler']:8s} NFE={r['nfe']:5d} N={r['N']:6d}  err {r['err_mean']:+.3f} ± {r['err_sd']:.3f}  "
              f"SW {r['sw_mean']:.3f} (floor {r['sw_floor']:.3f})  minESS {r['min_ess']:.0f}  {r['wall_s']:.1f}s", flush=True)

    cells = []
    for pb in problems:
        cells += [(pb, s, "steps", k, n_fix) for s in args.samplers for k in steps]
        cells += [(pb, s, "N", k_fix, n) for s in args.samplers if s in N_SWEEP for n in ns]
    for pb, sampler, sweep, k, n in cells:
        if time.perf_counter() - t_start > args.budget_s:
            print("budget spent: remaining cells skipped", flush=True)
            break
        r = run_cell(pb, sampler, k, n, seeds)
        r.update(pb.describe(), sweep=sweep)
        rows.append(r)
        show(r)
        save()
    else:
        meta["complete"] = True
    save()
    print(f"wrote {out}")
    plot(rows, [p.describe() for p in problems], args.plot or str(out.with_suffix(".png")))


def plot(rows, problems, path) -> None:
    """RMS log p(y) error and sliced W2 vs NFE, RMS error vs N (problems: ``Problem.describe()``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"before": "C3", "guided": "C1", "adapted": "C4", "denoised": "C2", "tds": "C0"}
    labels = {"before": "before (rate x h)", "guided": "path + exact weights", "adapted": "path, adapted",
              "denoised": "ensemble (denoised twist)", "tds": "twisted SMC"}
    problems = [pb for pb in problems if any(r["seed"] == pb["seed"] for r in rows)]
    fig, axes = plt.subplots(len(problems), 3, figsize=(12, 3.0 * len(problems)), squeeze=False)
    for ax_row, info in zip(axes, problems):
        sel = [r for r in rows if r["seed"] == info["seed"]]
        for s in colors:
            st = sorted([r for r in sel if r["sampler"] == s and r["sweep"] == "steps"], key=lambda r: r["nfe"])
            nn = sorted([r for r in sel if r["sampler"] == s and r["sweep"] == "N"], key=lambda r: r["N"])
            kw = dict(color=colors[s], marker="o", label=labels[s])
            if st:
                ax_row[0].loglog([r["nfe"] for r in st], [r["err_rms"] for r in st], **kw)
                ax_row[1].loglog([r["nfe"] for r in st], [r["sw_mean"] for r in st], **kw)
            if nn:
                ax_row[2].loglog([r["N"] for r in nn], [r["err_rms"] for r in nn], **kw)
        st = [r for r in sel if r["sweep"] == "steps"]
        if st:
            ax_row[1].axhline(np.mean([r["sw_floor"] for r in st]), color="k", ls=":", label="exact vs exact")
        nn = sorted({r["N"] for r in sel if r["sweep"] == "N"})
        if nn:
            ref = [r["err_rms"] for r in sel if r["sweep"] == "N" and r["N"] == nn[0]]
            c = float(np.min(ref))
            ax_row[2].loglog(nn, [c * (n / nn[0]) ** -0.5 for n in nn], "k:", label="N^-1/2")
        ax_row[0].set_title(f"d={info['d']} {info['operator']} s_y={info['noise']}: RMS log p(y) error", fontsize=9)
        ax_row[1].set_title("sliced W2 to exact posterior", fontsize=9)
        ax_row[2].set_title("RMS log p(y) error vs N", fontsize=9)
        for ax, xl in zip(ax_row, ("NFE", "NFE", "N")):
            ax.set_xlabel(xl)
    axes[0][0].legend(fontsize=7)
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
