"""Benchmark of probkit.dmcmc: sample quality versus NFE of Denoising Langevin Gibbs + integrator
against the same integrators started from noise (Kim & Ye 2023, arXiv 2209.14593).

Targets:

* ``gmm2d`` — 8 Gaussians on a ring of radius 2 (std 0.2) in 2-D; exact scores and log p_t, so DLG
  runs MALA x-moves and the exact grid t-move.
* ``gmm64`` — 8 diagonal Gaussians in d = 64 (means N(0, I), variances U[0.05, 0.3]); DLG both with
  MALA + exact t-move and score-only (ULA + learned noise-level classifier).
* ``digits`` — the pretrained score MLP of ``probkit.models.digits`` on scikit-learn's 8x8 digits
  (d = 64, score only): ULA + learned noise-level classifier, reference = the 1797 data images.

For each NFE budget B (10, 20, 50, 100 score evaluations per sample) and integrator:

* **from noise**: ``probkit.sample`` with ``B // nfe_per_step`` steps (log-SNR grid; uniform for
  Euler-Maruyama);
* **DLG**: ``num_chains`` chains keeping ``samples_per_chain`` draws each after a burn-in of the
  same length; thinning is set so that the MCMC spends about ``--mcmc-fraction`` of B
  (``thin = max(1, floor(frac * B / c) - 1)``, c = score evaluations per sweep: MALA 2, ULA 1),
  and the rest goes to the denoising pass from each draw's own t with the same integrator.
  The reported NFE is the exact amortised total (burn-in included). The t-moves are *not*
  score evaluations and are reported apart (``t_evals``: G log-density calls per sweep for the
  exact move, which a real model cannot provide; one classifier call for the learned move).
  The noise-level classifier's training is a one-off cost, like the score model's, and is not
  counted.

Every cell is averaged over ``--seeds`` independent runs (the DLG value is noisy: draws of one
chain share a mode, so mode frequencies vary with the number of chains, n / samples_per_chain).

Metrics: sliced 2-Wasserstein (256 projections) and MMD (RBF mixture, median heuristic) between
the n samples and a reference (exact draws; the data for digits), with the same-size
exact-vs-exact value as the Monte Carlo floor (for digits the floor row is the model's own
limit, DPM-Solver++(2M) with 200 steps from noise).

Usage::

    python benchmarks/dmcmc.py --quick          # CPU smoke run (n = 512, 3 integrators, 3 budgets, 1 seed)
    python benchmarks/dmcmc.py                  # full: n = 4096, 5 integrators, budgets 10, 20, 50, 100, 3 seeds

Writes ``benchmarks/results/dmcmc_<platform>.json``, ``dmcmc_<platform>.png`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import probkit
from probkit import dmcmc, smc
from probkit.diagnostics.metrics import mmd, sliced_wasserstein
from probkit.diffusion import VP, make_integrator
from probkit.models import GaussianMixture


def ring2d() -> GaussianMixture:
    ang = jnp.arange(8) * 2 * jnp.pi / 8
    return GaussianMixture(jnp.full(8, 1 / 8), 2.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1), jnp.full((8, 2), 0.04))


def mixture64() -> GaussianMixture:
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(64), 3)
    w = jax.random.dirichlet(k3, jnp.full(8, 5.0))
    return GaussianMixture(w, jax.random.normal(k1, (8, 64)), jax.random.uniform(k2, (8, 64), minval=0.05, maxval=0.3))


def load_target(name: str, n_ref: int, est_steps: int, need_estimator: bool):
    """(process, score_fn, logdensity_fn or None, reference samples, floor samples or None, shape, estimator, data)."""
    proc = VP()
    if name in ("gmm2d", "gmm64"):
        gm = ring2d() if name == "gmm2d" else mixture64()
        target = gm.noised(proc, proc.t_min)
        ref = target.sample(jax.random.PRNGKey(101), n_ref)
        other = target.sample(jax.random.PRNGKey(102), n_ref)
        data = gm.sample(jax.random.PRNGKey(103), 50_000)
        score_fn, logdensity_fn, shape = gm.score_fn(proc), gm.logdensity_fn(proc), (gm.dim,)
    elif name == "digits":
        from probkit.models.digits import load_digits_data, load_pretrained_digits
        from probkit.models.nets import make_score_fn

        params, config, proc = load_pretrained_digits()
        score_fn, logdensity_fn, shape = make_score_fn(params, config, proc), None, (64,)
        data = jnp.asarray(load_digits_data())
        ref, other = data, None
    else:
        raise ValueError(f"unknown target {name!r}")
    est = None
    if need_estimator:
        t0 = time.perf_counter()
        fit = dmcmc.train_noise_estimator(
            jax.random.PRNGKey(7), proc, data, NOISE_GRID, hidden=(256, 256),
            num_steps=est_steps, batch_size=256,
        )
        est = fit.estimator
        print(f"  [{name}] noise-level classifier: {est_steps} steps in {time.perf_counter() - t0:.1f}s, "
              f"final cross-entropy {float(fit.losses[-100:].mean()):.3f} (uniform: {math.log(NOISE_GRID.num_levels):.3f})", flush=True)
    return proc, score_fn, logdensity_fn, ref, other, shape, est


NOISE_GRID = dmcmc.NoiseGrid((0.02, 0.5), 64)
# Langevin steps h = scale * sigma_t^2 (dmcmc.noise_scaled_step): MALA acceptance ~0.8 in 2-D and ~0.6 in 64-D
# (MALA's optimal step shrinks like d^(-1/3)); ULA 1.0 (best of 0.1, 0.3, 1.0 on digits, quick run)
STEP_SIZES = {("gmm2d", "mala"): 1.0, ("gmm64", "mala"): 0.35, ("gmm64", "ula"): 1.0, ("digits", "ula"): 1.0}


def metrics(x, ref) -> tuple[float, float]:
    x = jnp.asarray(x, jnp.float32)
    sw = float(sliced_wasserstein(x, ref, jax.random.PRNGKey(1), num_projections=256))
    return sw, float(mmd(x, ref))


def dlg_config(budget: int, cost_per_sweep: int, frac: float, nfe_per_step: int, samples_per_chain: int):
    thin = max(1, int(math.floor(frac * budget / cost_per_sweep)) - 1)
    burn = samples_per_chain
    nfe_mcmc = (burn + samples_per_chain * thin) * cost_per_sweep / samples_per_chain
    steps = int((budget - nfe_mcmc) // nfe_per_step)
    return thin, burn, steps


def run_target(name, args, budgets, integrators) -> list[dict]:
    variants = {"gmm2d": [("mala", "exact")], "gmm64": [("mala", "exact"), ("ula", "learned")], "digits": [("ula", "learned")]}[name]
    need_est = any(v[1] == "learned" for v in variants)
    proc, score_fn, logdensity_fn, ref, other, shape, est = load_target(name, args.n, args.estimator_steps, need_est)
    n = args.n
    rows = []
    if other is not None:
        sw, mm = metrics(other, ref)
        rows.append(dict(target=name, method="exact draws (floor)", integrator="-", budget=0, nfe=0.0, sw2=sw, mmd=mm))
    else:
        r = probkit.sample(jax.random.PRNGKey(5), proc, score_fn, shape, n, 200, method="dpm_solver_2m", grid="log_snr")
        sw, mm = metrics(r.samples, ref)
        rows.append(dict(target=name, method="model floor (dpm_solver_2m, 200 steps)", integrator="dpm_solver_2m", budget=200, nfe=200.0, sw2=sw, mmd=mm))
    print_row(rows[-1])
    for integ in integrators:
        nps = make_integrator(integ, proc, score_fn).nfe_per_step
        grid = "uniform" if integ == "euler_maruyama" else "log_snr"
        for b in budgets:
            t0 = time.perf_counter()
            sws, mms = [], []
            for seed in range(args.seeds):
                r = probkit.sample(jax.random.PRNGKey(seed), proc, score_fn, shape, n, max(1, b // nps), method=integ, grid=grid)
                sw, mm = metrics(r.samples, ref)
                sws.append(sw)
                mms.append(mm)
            rows.append(dict(target=name, method="from noise", integrator=integ, budget=b, nfe=float(r.nfe),
                             sw2=float(np.mean(sws)), sw2_std=float(np.std(sws)), mmd=float(np.mean(mms)),
                             seconds=time.perf_counter() - t0))
            print_row(rows[-1])
            for x_move, t_move in variants:
                c = 2 if x_move == "mala" else 1
                spc = args.samples_per_chain
                thin, burn, steps = dlg_config(b, c, args.mcmc_fraction, nps, spc)
                if steps < 1:
                    continue
                t0 = time.perf_counter()
                sws, mms = [], []
                for seed in range(args.seeds):
                    step = dmcmc.noise_scaled_step(proc, args.step_size or STEP_SIZES[(name, x_move)])
                    res = dmcmc.dlg(
                        jax.random.PRNGKey(seed), proc, score_fn, shape,
                        logdensity_fn=logdensity_fn if t_move == "exact" else None,
                        x_move=smc.mala(step) if x_move == "mala" else smc.langevin(step),
                        t_move=NOISE_GRID if t_move == "exact" else est, num_chains=n // spc, num_samples=spc,
                        burn_in=burn, thin=thin, denoise=dmcmc.Denoise(integ, steps, grid),
                    )
                    sw, mm = metrics(res.samples, ref)
                    sws.append(sw)
                    mms.append(mm)
                rows.append(dict(
                    target=name, method=f"DLG ({x_move}, {t_move} t)", integrator=integ, budget=b, nfe=res.nfe,
                    sw2=float(np.mean(sws)), sw2_std=float(np.std(sws)), mmd=float(np.mean(mms)),
                    nfe_mcmc=res.nfe_mcmc, nfe_denoise=res.nfe_denoise, t_evals=res.t_evals, thin=thin, burn_in=burn,
                    denoise_steps=steps, acceptance=float(res.acceptance_rate), mean_t=float(res.t.mean()),
                    seconds=time.perf_counter() - t0,
                ))
                print_row(rows[-1])
    return rows


HEADER = f"{'target':<7} {'method':<30} {'integrator':<15} {'NFE':>6} {'MCMC':>5} {'den.':>4} {'SW2':>8} {'±sd':>7} {'MMD':>8} {'mean t':>6} {'acc':>5}"


def print_row(r: dict) -> None:
    mc = r.get("nfe_mcmc")
    print(
        f"{r['target']:<7} {r['method']:<30} {r['integrator']:<15} {r['nfe']:>6.1f} "
        f"{'' if mc is None else f'{mc:.1f}':>5} {'' if mc is None else r['nfe_denoise']:>4} {r['sw2']:>8.4f} {r.get('sw2_std', 0.0):>7.4f} {r['mmd']:>8.4f} "
        f"{'' if mc is None else format(r['mean_t'], '.2f'):>6} {'' if mc is None else format(r['acceptance'], '.2f'):>5}",
        flush=True,
    )


def plot(rows: list[dict], targets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, tgt in zip(axes[0], targets):
        rs = [r for r in rows if r["target"] == tgt]
        floor = [r for r in rs if r["budget"] == 0 or r["method"].startswith("model floor")]
        for r in floor:
            ax.axhline(r["sw2"], color="k", ls=":", lw=1, label=r["method"])
        keys = sorted({(r["method"], r["integrator"]) for r in rs if r not in floor})
        colors = {}
        for method, integ in keys:
            pts = sorted((r["nfe"], r["sw2"]) for r in rs if r["method"] == method and r["integrator"] == integ)
            col = colors.setdefault(integ, f"C{len(colors)}")
            ls = "--" if method == "from noise" else ("-" if "exact" in method else "-.")
            ax.plot(*zip(*pts), ls=ls, marker="o", color=col, label=f"{method} / {integ}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE per sample")
        ax.set_ylabel("sliced W2 to reference")
        ax.set_title(tgt)
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a CPU smoke run")
    p.add_argument("--targets", type=str, default="gmm2d,gmm64,digits")
    p.add_argument("--budgets", type=str, default=None, help="comma-separated NFE budgets (default 10,20,50,100)")
    p.add_argument("--integrators", type=str, default=None)
    p.add_argument("--n", type=int, default=None, help="samples per method")
    p.add_argument("--samples-per-chain", type=int, default=8, help="kept draws per chain (burn-in = the same number of sweeps)")
    p.add_argument("--mcmc-fraction", type=float, default=0.25, help="share of the budget spent on MCMC sweeps")
    p.add_argument("--step-size", type=float, default=None, help="Langevin step scale (h = scale * sigma_t^2, dmcmc.noise_scaled_step); default per target")
    p.add_argument("--estimator-steps", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None, help="repetitions averaged per cell (default 1 quick, 3 full)")
    p.add_argument("--out", type=str, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.n = args.n or 512
        budgets = [10, 20, 50]
        integrators = ["dpm_solver_2m", "ddim", "euler_maruyama"]
        args.estimator_steps = args.estimator_steps or 1500
        args.seeds = args.seeds or 1
    else:
        args.n = args.n or 4096
        budgets = [10, 20, 50, 100]
        integrators = ["dpm_solver_2m", "ddim", "heun", "ddpm", "euler_maruyama"]
        args.estimator_steps = args.estimator_steps or 10_000
        args.seeds = args.seeds or 3
    if args.budgets:
        budgets = [int(b) for b in args.budgets.split(",")]
    if args.integrators:
        integrators = args.integrators.split(",")
    if args.n % args.samples_per_chain:
        raise SystemExit("--n must be a multiple of --samples-per-chain")
    targets = args.targets.split(",")
    print(f"platform={jax.default_backend()} ({jax.devices()[0].device_kind}) n={args.n} budgets={budgets}")
    print(HEADER)
    rows: list[dict] = []
    t_start = time.perf_counter()
    for tgt in targets:
        rows += run_target(tgt, args, budgets, integrators)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"dmcmc_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
        "python": platform.python_version(), "quick": args.quick, "n": args.n, "budgets": budgets,
        "integrators": integrators, "samples_per_chain": args.samples_per_chain, "mcmc_fraction": args.mcmc_fraction,
        "step_size": args.step_size or {f"{k[0]}/{k[1]}": v for k, v in STEP_SIZES.items()}, "t_range": list(NOISE_GRID.noise_range), "num_t_grid": NOISE_GRID.num_levels,
        "estimator_steps": args.estimator_steps, "seeds": args.seeds, "seconds": time.perf_counter() - t_start,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, targets, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return rows


if __name__ == "__main__":
    main()
