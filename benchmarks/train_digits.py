"""Train the score model shipped with probkit for the 8x8 digits, and check its samples.

    python benchmarks/train_digits.py            # full recipe (16000 steps, ~6 min on 2 CPU cores), writes
                                                 # probkit/models/pretrained/digits_vp.{npz,json}
    python benchmarks/train_digits.py --quick    # smoke run (small, does not overwrite the model)
    python benchmarks/train_digits.py --eval-only  # evaluate the shipped model (no training)

Reports the DSM loss (EMA parameters, full data, 8 noise draws), draws samples with
``probkit.sample`` and compares them with the data: sliced Wasserstein to the data versus the
same statistic between two halves of the data (the sampling noise floor), and the nearest
training image distance (memorisation check: samples should not sit much closer to a
training image than held-out data does), and a sweep over integrators and step counts.
Writes a PNG of samples and
``benchmarks/results/train_digits_<platform>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import probkit  # noqa: E402
from probkit.diagnostics.metrics import sliced_wasserstein  # noqa: E402
from probkit.diffusion import VP  # noqa: E402
from probkit.models.digits import load_digits_data, plot_digits  # noqa: E402
from probkit.models.nets import (  # noqa: E402
    TrainResult,
    count_params,
    load_score_model,
    read_metadata,
    dsm_loss,
    make_score_fn,
    save_score_model,
    train_score_model,
)


def nn_dist(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of x to its nearest row of ref."""
    d2 = (x**2).sum(1)[:, None] - 2 * x @ ref.T + (ref**2).sum(1)[None, :]
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small CPU smoke run; does not overwrite the shipped model")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--sample-steps", type=int, default=200)
    p.add_argument("--method", default="ddpm")
    p.add_argument("--out", default=None, help="base path of the saved model (default: the shipped model)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--eval-only", action="store_true", help="load the model at --out (default: shipped) and evaluate")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="storage dtype of the weights")
    args = p.parse_args(argv)

    steps = args.steps or (300 if args.quick else 16_000)
    if args.quick:
        args.hidden, args.depth, args.num_samples, args.sample_steps = 64, 2, 200, 50
    platform = jax.default_backend()
    out = args.out or os.path.join(ROOT, "probkit", "models", "pretrained", "digits_vp")
    save = not args.no_save and not args.eval_only and not (args.quick and args.out is None)
    results_dir = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(results_dir, exist_ok=True)

    data = load_digits_data()
    process = VP()
    key = jax.random.PRNGKey(args.seed)
    k_train, k_eval, k_sample, k_sw = jax.random.split(key, 4)

    t0 = time.time()

    def callback(done, losses, state):
        print(f"  step {done:6d}  loss(chunk mean) {float(np.mean(losses)):.4f}  {time.time() - t0:6.1f}s", flush=True)

    if args.eval_only:
        params, config, process = load_score_model(out)
        res = TrainResult(params, config, jnp.full((1,), jnp.nan), None)
        meta = read_metadata(out).get("metadata", {})
        steps = meta.get("steps", 0)
        args.batch_size, args.lr, args.ema = meta.get("batch_size"), meta.get("learning_rate"), meta.get("ema_decay")
        args.hidden, args.depth = config.hidden, config.depth
    else:
        res = train_score_model(k_train, data, process, steps, args.batch_size, hidden=args.hidden, depth=args.depth,
                                learning_rate=args.lr, ema_decay=args.ema, chunk_size=500 if not args.quick else 100,
                                callback=callback)
    jax.block_until_ready(res.params)
    train_s = time.time() - t0

    x0 = jnp.asarray(data)
    eval_loss = float(np.mean([dsm_loss(res.params, res.config, process, k, x0, process.t_min)
                               for k in jax.random.split(k_eval, 8)]))
    losses = np.asarray(res.losses)

    score_fn = make_score_fn(res.params, res.config, process)
    t1 = time.time()
    samples = probkit.sample(k_sample, process, score_fn, (64,), args.num_samples, args.sample_steps,
                             method=args.method).samples
    samples = np.asarray(jax.block_until_ready(samples))
    sample_s = time.time() - t1
    samples_clipped = np.clip(samples, -1.0, 1.0)

    perm = np.random.default_rng(0).permutation(len(data))
    half_a, half_b = data[perm[: len(data) // 2]], data[perm[len(data) // 2:]]
    sw = float(sliced_wasserstein(jnp.asarray(samples_clipped), x0, k_sw))
    sw_floor = float(sliced_wasserstein(jnp.asarray(half_a), jnp.asarray(half_b), k_sw))
    nn_samples = float(np.median(nn_dist(samples_clipped, data)))
    nn_heldout = float(np.median(nn_dist(half_b, half_a)))
    nn_samples_half = float(np.median(nn_dist(samples_clipped[: len(half_b)], half_a)))

    sweep = []
    grid_of = {"dpm_solver_2m": "log_snr"}
    for method, n in ([("ddpm", 200), ("ddim", 50), ("heun", 25), ("dpm_solver_2m", 20), ("dpm_solver_2m", 50)]
                      if not args.quick else [("ddim", 20)]):
        grid = grid_of.get(method, "uniform")
        xs = probkit.sample(k_sample, process, score_fn, (64,), args.num_samples, n, method=method, grid=grid)
        xs_np = np.asarray(xs.samples)
        sweep.append({"method": method, "grid": grid, "num_steps": n, "nfe": xs.nfe,
                      "sliced_wasserstein": float(sliced_wasserstein(jnp.asarray(np.clip(xs_np, -1, 1)), x0, k_sw)),
                      "max_abs": float(np.abs(xs_np).max())})

    fig_path = os.path.join(results_dir, "digits_samples.png" if not args.quick else "digits_samples_quick.png")
    plot_digits(samples_clipped[:100], fig_path,
                title=f"{args.method}, {args.sample_steps} steps, DSM loss {eval_loss:.4f}")

    summary = {
        "platform": platform,
        "steps": steps, "batch_size": args.batch_size, "hidden": args.hidden, "depth": args.depth,
        "learning_rate": args.lr, "ema_decay": args.ema, "num_params": count_params(res.params),
        "train_seconds": round(train_s, 1),
        "loss_first_500": float(losses[:500].mean()) if not args.eval_only else None,
        "loss_last_500": float(losses[-500:].mean()) if not args.eval_only else None,
        "dsm_loss_ema_full_data": eval_loss,
        "sampler": {"method": args.method, "num_steps": args.sample_steps, "num_samples": args.num_samples,
                    "seconds": round(sample_s, 2)},
        "sliced_wasserstein_samples_vs_data": sw,
        "sliced_wasserstein_half_vs_half_data": sw_floor,
        "median_nn_dist_samples_to_data": nn_samples,
        "median_nn_dist_samples_to_half_data": nn_samples_half,
        "median_nn_dist_heldout_half_to_half": nn_heldout,
        "figure": os.path.relpath(fig_path, ROOT),
        "sampler_sweep": sweep,
    }
    if save:
        meta = {k: summary[k] for k in ("steps", "batch_size", "learning_rate", "ema_decay", "num_params",
                                        "dsm_loss_ema_full_data", "sliced_wasserstein_samples_vs_data")}
        meta.update(data="sklearn.datasets.load_digits, pixels/16 mapped to [-1, 1], flattened (1797, 64)",
                    trained_with="benchmarks/train_digits.py", seed=args.seed, storage_dtype=args.dtype)
        npz, js = save_score_model(out, res.params, res.config, process, dtype=args.dtype, metadata=meta)
        summary["saved"] = [os.path.relpath(npz, ROOT), os.path.relpath(js, ROOT)]
        summary["npz_bytes"] = os.path.getsize(npz)

    name = "train_digits" + ("_quick" if args.quick else "") + ("_eval" if args.eval_only else "")
    with open(os.path.join(results_dir, f"{name}_{platform}.json"), "w") as f:
        json.dump(summary, f, indent=1)

    print()
    print(f"{'quantity':42s} value")
    for k, v in summary.items():
        if not isinstance(v, (dict, list)):
            print(f"{k:42s} {v}")
    print(f"{'sampler':42s} {summary['sampler']}")
    print(f"\n{'method':15s} {'grid':9s} {'steps':>5s} {'NFE':>5s} {'SW to data':>11s}  (floor {sw_floor:.4f})")
    for r in sweep:
        print(f"{r['method']:15s} {r['grid']:9s} {r['num_steps']:5d} {r['nfe']:5d} {r['sliced_wasserstein']:11.4f}")
    return summary


if __name__ == "__main__":
    main()
