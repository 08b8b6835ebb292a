"""Train the LJ-13 score model at T = 2 (denoising score matching, rotations + permutations).

Training data: fresh BlackJAX HMC chains at T = 2 (``boltzmann_reference.generate``, a seed
independent of the cached reference), internal centre-of-mass-free coordinates. Each
architecture in ``--arch`` (``mlp``: probkit.models.nets' residual MLP with symmetry
augmentation; ``egnn``: the E(n)-equivariant network of probkit.models.boltzmann) is trained
with optax (AdamW, warm-up + cosine, EMA) and evaluated against the cached reference
``benchmarks/data/lj13_T2.0.npz``:

* held-out DSM loss (fixed keys);
* Wasserstein-1 of energies and of interatomic distances between the reference and 4096 draws of
  the model's reverse SDE (``probkit.fkc.anneal`` with beta = 1, i.e. no reweighting, 500 steps).

The architecture with the lower energy W1 is written to ``--out-dir`` as ``lj13_T2.{npz,json}``
(the shipped ``probkit/models/pretrained/lj13_T2``), with a JSON report.

Usage::

    python benchmarks/train_boltzmann.py --quick                 # CPU smoke test
    python benchmarks/train_boltzmann.py --out-dir probkit/models/pretrained
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import wasserstein_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from boltzmann_reference import DATA, generate  # noqa: E402

from probkit import fkc  # noqa: E402
from probkit.diffusion import VP  # noqa: E402
from probkit.models import boltzmann as bz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model: bz.ScoreModel, ref_x: np.ndarray, num_particles: int, num_steps: int, key) -> dict:
    """Held-out DSM loss and W1 (energy, distances) of beta = 1 reverse-SDE samples vs the reference."""
    proc = model.process
    y_ref = jnp.asarray(bz.to_internal(ref_x, 13, 3))
    apply = lambda p, y, t: bz.eps_apply(model.arch, model.config, proc, p, y, t)  # noqa: E731
    loss_fn = jax.jit(lambda p, k, y: bz.dsm_loss(p, apply, proc, k, y, proc.t_min))
    losses = [float(loss_fn(model.params, jax.random.PRNGKey(1000 + i), y_ref[: 2048])) for i in range(8)]
    t0 = time.perf_counter()
    res = fkc.anneal(key, proc, bz.score_fn(model), 1.0, num_particles, num_steps, shape=(36,), eta=1.0)
    x = np.asarray(bz.from_internal(res.particles, 13, 3))
    wall = time.perf_counter() - t0
    e = np.asarray(bz.LJ13.energy(x))
    e_ref = np.asarray(bz.LJ13.energy(ref_x))
    ok = np.isfinite(e)
    d, d_ref = np.asarray(bz.LJ13.distances(x)).ravel(), np.asarray(bz.LJ13.distances(ref_x)).ravel()
    return {"dsm_loss_heldout": float(np.mean(losses)), "w1_energy": float(wasserstein_distance(e[ok], e_ref)),
            "w1_distance": float(wasserstein_distance(d, d_ref)), "energy_mean": float(np.mean(e[ok])),
            "energy_mean_ref": float(e_ref.mean()), "nonfinite": int((~ok).sum()), "sample_wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["mlp", "egnn"])
    p.add_argument("--steps", type=int, nargs="+", default=[30000, 15000], help="per architecture")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-chains", type=int, default=4096)
    p.add_argument("--train-draws", type=int, default=32)
    p.add_argument("--reference", type=Path, default=DATA / "lj13_T2.0.npz")
    p.add_argument("--out-dir", type=Path, default=ROOT / "probkit" / "models" / "pretrained")
    p.add_argument("--report", type=Path, default=None)
    p.add_argument("--eval-particles", type=int, default=4096)
    p.add_argument("--eval-steps", type=int, default=500)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.steps, args.train_chains, args.train_draws, args.eval_particles, args.eval_steps = [200, 100], 32, 8, 128, 50
    steps = dict(zip(args.arch, args.steps + [args.steps[-1]] * len(args.arch)))
    print(f"platform={jax.default_backend()} ({jax.devices()[0].device_kind})", flush=True)
    proc = VP()
    t0 = time.perf_counter()
    x, _, rep = generate(jax.random.PRNGKey(12345), 2.0, args.train_chains, args.train_draws, 25,
                         200 if args.quick else 3000)
    x = x[:, x.shape[1] // 4:].reshape(-1, 39)
    data = np.asarray(bz.to_internal(x, 13, 3))
    print(f"training data: {data.shape} in {time.perf_counter() - t0:.1f}s "
          f"(rhat E {rep['diagnostics']['energy']['rhat']:.3f})", flush=True)
    ref_x = np.load(args.reference)["positions"]
    report = {"platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
              "train_data": {"n": int(data.shape[0]), **{k: rep[k] for k in ("num_chains", "acceptance", "wall_s")},
                             "rhat_energy": rep["diagnostics"]["energy"]["rhat"]},
              "models": {}}
    best, best_w1 = None, np.inf
    for arch in args.arch:
        kw = {"hidden": 256, "depth": 3} if arch == "mlp" else {"hidden": 64, "depth": 4}
        if args.quick:
            kw = {"hidden": 32, "depth": 2}
        t0 = time.perf_counter()
        model, losses = bz.train_score(
            jax.random.PRNGKey(7), data, bz.LJ13, proc, steps[arch], arch=arch, batch_size=args.batch_size,
            learning_rate=args.lr, temperature=2.0,
            callback=lambda i, l, a=arch: print(f"  {a} step {i}: loss {l:.4f}", flush=True), **kw)
        train_wall = time.perf_counter() - t0
        ev = evaluate(model, ref_x, args.eval_particles, args.eval_steps, jax.random.PRNGKey(3))
        n_params = int(sum(v.size for v in jax.tree_util.tree_leaves(model.params)))
        report["models"][arch] = {"steps": steps[arch], "net": kw, "params": n_params, "train_wall_s": train_wall,
                                  "final_loss": float(losses[-1000:].mean()), **ev}
        print(f"{arch}: {n_params} params, {train_wall:.0f}s, {ev}", flush=True)
        if ev["w1_energy"] < best_w1:
            best, best_w1 = model, ev["w1_energy"]
    report["chosen"] = best.arch
    args.out_dir.mkdir(parents=True, exist_ok=True)
    files = bz.save_model(args.out_dir / "lj13_T2", best, dtype="float16" if best.arch == "mlp" else "float32",
                          metadata={"recipe": "benchmarks/train_boltzmann.py", "chosen_by": "energy W1 at T=2",
                                    "evaluation": report["models"][best.arch]})
    print("saved", files, flush=True)
    with open(args.report or args.out_dir / "train_boltzmann.json", "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
