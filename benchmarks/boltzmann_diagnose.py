"""Where does the FKC energy bias at LJ-13 2 -> 1.5 come from? Two diagnostics (CPU or GPU).

1. ``--stop``: the FKC weights switched off below t_stop (the particles still follow the annealed
   scaled-score SDE to t = 0): if errors of the learned score at low noise caused the bias,
   dropping the low-noise weights would remove it.
2. ``--tail``: M MALA steps on the EXACT energy at the target temperature after the run
   (``probkit.models.boltzmann.mcmc_refine``: half the steps adapt the step size), applied to the
   resampled FKC particles and to the scaled-score SDE's particles alike; and MALA from the
   diffusion prior for the same M. Local relaxation fixes vibrational temperature fast; basin
   populations (set by the sampler) relax slowly.

    python benchmarks/boltzmann_diagnose.py --num-particles 1024 --num-steps 200 --seeds 2   # CPU, ~25 min on 2 cores

Prints one line per (method, setting) and writes ``benchmarks/results/boltzmann_diagnose_<platform>.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc import resampling as bj_resampling

from probkit import fkc
from probkit.diffusion import time_grid
from probkit.models import boltzmann as bz
from probkit.smc import run_smc

ROOT = Path(__file__).resolve().parents[1]
SYSTEM, T_TRAIN = bz.LJ13, 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=1.5)
    p.add_argument("--num-particles", type=int, default=1024)
    p.add_argument("--num-steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--stop", type=float, nargs="*", default=[0.02])
    p.add_argument("--tail", type=int, nargs="*", default=[20, 100, 400])
    p.add_argument("--eta", default="1.0", help="noise multiple of g(t): a number, or 'default' (fkc.default_eta, 2 - t)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    temp, n = a.target, a.num_particles
    ref = np.load(ROOT / "benchmarks" / "data" / f"lj13_T{temp:.1f}.npz")["positions"].astype(np.float64)
    e_ref = np.asarray(SYSTEM.energy(ref), np.float64)
    d_ref = np.asarray(SYSTEM.distances(ref), np.float64).ravel()
    model = bz.load_pretrained()
    ts = time_grid(model.process, a.num_steps, "quadratic")

    def metrics(y, w=None):
        from scipy.stats import wasserstein_distance

        x = np.asarray(bz.from_internal(y, 13, 3))
        e, d = np.asarray(SYSTEM.energy(x), np.float64), np.asarray(SYSTEM.distances(x), np.float64)
        w = np.ones(len(e)) if w is None else np.asarray(w, np.float64)
        ok = np.isfinite(e)
        w = w * ok / np.sum(w * ok)
        return {"w1_energy": wasserstein_distance(e[ok], e_ref, u_weights=w[ok]),
                "w1_distance": wasserstein_distance(d[ok].ravel(), d_ref, u_weights=np.repeat(w[ok], d.shape[1])),
                "energy_mean": float(np.sum(w[ok] * e[ok]))}

    def runner(weighted, t_stop=0.0):
        model_fk, target = fkc.fkc_model(model.process, (bz.score_fn(model),), (T_TRAIN / temp,), (SYSTEM.internal_dim,),
                                         eta=None if a.eta == "default" else float(a.eta), weighted=weighted)
        if t_stop > 0:
            step = model_fk.transition

            def transition(key, t, t_next, particle):
                new = step(key, t, t_next, particle)
                return new._replace(log_g=jnp.where(t < t_stop, 0.0, new.log_g))

            model_fk = model_fk._replace(transition=transition)
        return jax.jit(lambda key: run_smc(key, model_fk, n, ts, target=target, resampling="systematic", ess_threshold=0.5))

    def tail(key, y, m):  # the exact-energy MCMC corrector at t = 0
        return bz.mcmc_refine(key, SYSTEM, temp, y, m).samples[:, -1]

    rows = {}

    def add(name, m):
        rows.setdefault(name, []).append(m)

    for name, weighted, t_stop in [("sde", False, 0.0), ("fkc", True, 0.0)] + [(f"fkc_stop{s}", True, s) for s in a.stop]:
        run = runner(weighted, t_stop)
        for seed in range(a.seeds):
            res = run(jax.random.PRNGKey(seed))
            w = jax.nn.softmax(res.log_weights)
            add(name, metrics(res.particles, np.asarray(w) if weighted else None))
            if t_stop == 0:
                y = res.particles[bj_resampling.systematic(jax.random.PRNGKey(100 + seed), w, n)] if weighted else res.particles
                for m in a.tail:
                    add(f"{name}+mala{m}", metrics(tail(jax.random.PRNGKey(200 + seed), y, m)))
    for m in a.tail:
        for seed in range(a.seeds):
            y0 = jax.random.normal(jax.random.PRNGKey(300 + seed), (n, SYSTEM.internal_dim))
            add(f"mala{m}_from_noise", metrics(tail(jax.random.PRNGKey(400 + seed), y0, m)))
    summary = {k: {f: [float(np.mean([r[f] for r in v])), float(np.std([r[f] for r in v]))] for f in v[0]} for k, v in rows.items()}
    print(f"T = {temp}, N = {n}, {a.num_steps} steps, {a.seeds} seeds, eta {a.eta}; reference <E> = {e_ref.mean():.2f}")
    for k, s in summary.items():
        print(f"{k:22s} " + "  ".join(f"{f} {m:.3f} ± {sd:.3f}" for f, (m, sd) in s.items()))
    out = a.out or ROOT / "benchmarks" / "results" / f"boltzmann_diagnose_{jax.default_backend()}.json"
    with open(out, "w") as fh:
        json.dump({"target_T": temp, "num_particles": n, "num_steps": a.num_steps, "seeds": a.seeds, "eta": a.eta,
                   "device": jax.devices()[0].device_kind, "summary": summary, "rows": rows}, fh, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
