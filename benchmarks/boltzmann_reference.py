"""Reference samples of LJ-13 (DEM form, see probkit.models.boltzmann) at several temperatures.

Many vmapped BlackJAX HMC chains on the centre-of-mass-free internal coordinates
(``exp(-E(H^T y) / T)``), started from random relaxed clouds, step size adapted during warm-up
(then frozen). Convergence is checked with ArviZ on invariant summaries (energy, mean
interatomic distance, radius of gyration): split R-hat and bulk ESS over all chains. Each
temperature's thinned draws are cached as ``benchmarks/data/lj13_T<T>.npz`` (Cartesian,
CoM-free, float32, ``positions`` of shape ``(K, 39)`` and their ``energies``), with the
diagnostics in ``benchmarks/data/lj13_reference.json``. No downloads.

Usage::

    python benchmarks/boltzmann_reference.py --quick          # CPU smoke test (tiny)
    python benchmarks/boltzmann_reference.py                  # GPU: 4096 chains per temperature
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from probkit.models.boltzmann import LJ13, from_internal, mcmc_sample

DATA = Path(__file__).resolve().parent / "data"


def diagnostics(energies: np.ndarray, x: np.ndarray) -> dict:
    """Split R-hat and bulk ESS (ArviZ) of invariant summaries; arrays are (chains, draws, ...)."""
    import arviz as az

    d = np.asarray(LJ13.distances(x))
    rg = np.sqrt(np.mean(np.sum(x**2, -1), -1))
    out = {}
    for name, v in (("energy", energies), ("mean_distance", d.mean(-1)), ("radius_of_gyration", rg)):
        v = np.asarray(v, np.float64)
        out[name] = {"rhat": float(az.rhat(v)), "ess_bulk": float(az.ess(v, method="bulk")),
                     "mean": float(v.mean()), "std": float(v.std())}
    return out


def generate(key, temperature: float, num_chains: int, num_draws: int, thin: int, num_warmup: int,
             step_size: float = 0.05) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run the chains; return Cartesian draws (chains, draws, 13, 3), energies, and a report."""
    t0 = time.perf_counter()
    r = mcmc_sample(key, LJ13, temperature, num_chains, num_draws, thin=thin, num_warmup=num_warmup,
                    step_size=step_size, method="hmc", num_integration_steps=10)
    y = np.asarray(r.samples)
    wall = time.perf_counter() - t0
    x = np.asarray(from_internal(y, 13, 3))
    e = np.asarray(r.energies)
    rep = {"temperature": temperature, "num_chains": num_chains, "num_draws": num_draws, "thin": thin,
           "num_warmup": num_warmup, "step_size": r.step_size, "acceptance": float(r.acceptance),
           "wall_s": wall, "gradient_evals_per_chain": (num_warmup + num_draws * thin) * 11,
           "min_distance": float(np.asarray(LJ13.distances(x)).min()),
           "diagnostics": diagnostics(e, x)}
    return x, e, rep


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--temperatures", type=float, nargs="+", default=[2.0, 1.5, 1.0])
    p.add_argument("--num-chains", type=int, default=4096)
    p.add_argument("--num-draws", type=int, default=40)
    p.add_argument("--thin", type=int, default=25)
    p.add_argument("--num-warmup", type=int, default=3000)
    p.add_argument("--keep", type=int, default=8192, help="draws cached per temperature")
    p.add_argument("--out-dir", type=Path, default=DATA)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.num_chains, args.num_draws, args.thin, args.num_warmup, args.keep = 32, 8, 5, 200, 128
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"platform={jax.default_backend()} ({jax.devices()[0].device_kind})", flush=True)
    report = {"system": "LJ-13, DEM form (epsilon=1, r_m=1, energy_factor=1, oscillator_scale=1, soft_core=0.8)",
              "sampler": "blackjax.hmc (10 leapfrog steps), vmapped chains, internal CoM-free coordinates",
              "platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind, "runs": []}
    rng = np.random.default_rng(args.seed)
    for i, temp in enumerate(args.temperatures):
        x, e, rep = generate(jax.random.PRNGKey(args.seed * 100 + i), temp, args.num_chains, args.num_draws,
                             args.thin, args.num_warmup)
        # keep the second half of every chain's draws, then a random subset
        half = x.shape[1] // 2
        xs, es = x[:, half:].reshape(-1, 39), e[:, half:].reshape(-1)
        idx = rng.choice(xs.shape[0], size=min(args.keep, xs.shape[0]), replace=False)
        path = args.out_dir / f"lj13_T{temp:.1f}.npz"
        np.savez_compressed(path, positions=xs[idx].astype(np.float32), energies=es[idx].astype(np.float32),
                            temperature=np.float32(temp))
        rep["file"] = path.name
        rep["num_cached"] = int(len(idx))
        report["runs"].append(rep)
        dg = rep["diagnostics"]
        print(f"T={temp}: {rep['wall_s']:.1f}s acc={rep['acceptance']:.2f} step={rep['step_size']:.4f} "
              f"E={dg['energy']['mean']:.2f}±{dg['energy']['std']:.2f} rhat(E)={dg['energy']['rhat']:.3f} "
              f"ess(E)={dg['energy']['ess_bulk']:.0f} rhat(d)={dg['mean_distance']['rhat']:.3f} "
              f"min d={rep['min_distance']:.3f} -> {path}", flush=True)
    with open(args.out_dir / "lj13_reference.json", "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
