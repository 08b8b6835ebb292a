"""Benchmark of probkit.fkc: throughput and accuracy against particle count and dimension.

Problem: the product of two diagonal Gaussian mixtures (2 components each) in d dimensions,
sampled with ``fkc.product`` (VP process, Euler-Maruyama proposal, adaptive systematic
resampling). Its exact target is the 4-component mixture ``GaussianMixture.product``, so the
sliced 2-Wasserstein distance to exact draws measures accuracy; the same run without the
Feynman-Kac weights is reported beside it.

Throughput is particle-steps per second of the compiled scan (compile excluded: every
configuration is run once to compile, then timed). Memory traffic: one step must at least read
and write every particle (2 · d · 4 bytes, float32) and its log-weight (8 bytes); a resampling
step adds a gather (read + write 2 · d · 4 bytes and 4 bytes of index per particle). The score of
a small mixture is computed from registers/cache, so these bytes are the floor of what a step
must move; we report bytes/s and, on GPUs, the fraction of the peak HBM bandwidth
(H100 SXM ~3.35 TB/s, H200 ~4.8 TB/s).

Usage::

    python benchmarks/fkc.py --quick                 # CPU smoke run (small sizes)
    python benchmarks/fkc.py                         # full sweep: N = 2^10..2^20 at d = 2; d = 2..1024 at N = 2^14
    python benchmarks/fkc.py --shard                 # shard the particle axis over all devices

Writes ``benchmarks/results/fkc_<platform>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probkit.diffusion import VP, time_grid
from probkit.fkc import fkc_model
from probkit.models import GaussianMixture
from probkit.smc import SMCConfig, run_smc, smc_init, smc_step

PEAK_BW = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def peak_bandwidth() -> float | None:
    kind = jax.devices()[0].device_kind
    for name, bw in PEAK_BW.items():
        if name in kind:
            return bw
    return None


def experts(d: int, key) -> tuple[GaussianMixture, GaussianMixture]:
    k1, k2, k3, k4 = jax.random.split(key, 4)
    a = GaussianMixture(jnp.array([0.5, 0.5]), jax.random.normal(k1, (2, d)), 0.5 + jax.random.uniform(k2, (2, d)))
    b = GaussianMixture(jnp.array([0.3, 0.7]), jax.random.normal(k3, (2, d)), 0.5 + jax.random.uniform(k4, (2, d)))
    return a, b


def sliced_w2(key, x, y, num_projections: int = 128) -> float:
    """Sliced 2-Wasserstein distance between equal-size clouds (x, y: (n, d))."""
    theta = jax.random.normal(key, (num_projections, x.shape[1]))
    theta /= jnp.linalg.norm(theta, axis=1, keepdims=True)
    px, py = jnp.sort(x @ theta.T, axis=0), jnp.sort(y @ theta.T, axis=0)
    return float(jnp.sqrt(jnp.mean((px - py) ** 2)))


def xla_step_cost(model, n: int, ts, sharding) -> tuple[float | None, float | None]:
    """XLA's own estimate (compiled cost analysis) of bytes accessed and flops of one engine step."""
    try:
        cfg = SMCConfig("systematic", 0.5, None, sharding)
        key = jax.random.PRNGKey(0)
        state = jax.eval_shape(lambda k: smc_init(k, model, n, cfg), key)
        step = jax.jit(lambda k, s, t, tn: smc_step(k, s, t, tn, model, cfg))
        ca = step.lower(key, state, ts[0], ts[1]).compile().cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        return ca.get("bytes accessed"), ca.get("flops")
    except Exception:  # cost analysis is backend-dependent; the benchmark must not fail on it
        return None, None


def bench_one(n: int, d: int, steps: int, repeats: int, sharding, sw_points: int) -> dict:
    proc = VP()
    a, b = experts(d, jax.random.PRNGKey(d))
    ts = time_grid(proc, steps)
    row = {"num_particles": n, "dim": d, "num_steps": steps}
    for weighted in (True, False):
        model, target = fkc_model(proc, (a.score_fn(proc), b.score_fn(proc)), (1.0, 1.0), (d,), weighted=weighted)
        run = lambda key: run_smc(key, model, n, ts, target=target, nfe_per_step=2, sharding=sharding)  # noqa: E731
        out = run(jax.random.PRNGKey(0))  # compile
        jax.block_until_ready(out.particles)
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            out = run(jax.random.PRNGKey(r + 1))
            jax.block_until_ready(out.particles)
            times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        m = min(n, sw_points)
        exact = a.noised(proc, proc.t_min).product(b.noised(proc, proc.t_min)).sample(jax.random.PRNGKey(99), m)
        draws = out.resample(jax.random.PRNGKey(7), m) if weighted else out.particles[:m]
        sw = sliced_w2(jax.random.PRNGKey(5), draws, exact)
        tag = "fk" if weighted else "plain"
        row[f"{tag}_seconds"] = sec
        row[f"{tag}_particle_steps_per_s"] = n * steps / sec
        row[f"{tag}_sw2"] = sw
        if weighted:
            n_res = int(np.asarray(out.resampled).sum())
            bytes_moved = steps * n * (2 * d * 4 + 8) + n_res * n * (2 * d * 4 + 4)
            row["num_resampled"] = n_res
            row["bytes_per_s"] = bytes_moved / sec
            bw = peak_bandwidth()
            row["bandwidth_fraction"] = None if bw is None else bytes_moved / sec / bw
            row["final_ess"] = float(1.0 / np.sum(np.exp(2 * np.asarray(out.log_weights, np.float64))))
            row["min_ess_fraction"] = float(np.asarray(out.ess).min()) / n
            row["max_log_weight_spread"] = float(np.asarray(out.log_weight_spread).max())
            xb, xf = xla_step_cost(model, n, ts, sharding)
            row["xla_bytes_per_step"], row["xla_flops_per_step"] = xb, xf
            row["xla_bytes_per_s"] = None if xb is None else xb * steps / sec
            row["xla_bandwidth_fraction"] = None if (xb is None or bw is None) else xb * steps / sec / bw
            row["seconds_per_step"] = sec / steps
    # Monte Carlo floor of the metric: two independent exact samples of the same size
    exact = a.noised(proc, proc.t_min).product(b.noised(proc, proc.t_min))
    m = min(n, sw_points)
    row["sw2_floor"] = sliced_w2(jax.random.PRNGKey(5), exact.sample(jax.random.PRNGKey(1), m), exact.sample(jax.random.PRNGKey(2), m))
    return row


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a CPU smoke run")
    p.add_argument("--particles", type=str, default=None, help="comma-separated log2 particle counts for the d=2 sweep")
    p.add_argument("--dims", type=str, default=None, help="comma-separated dimensions for the dimension sweep")
    p.add_argument("--dim-sweep-log2n", type=int, default=None, help="log2 N for the dimension sweep")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sw-points", type=int, default=2**14, help="points used for sliced Wasserstein")
    p.add_argument("--shard", action="store_true", help="shard particles over all devices (1-D mesh)")
    p.add_argument("--out", type=str, default=None)
    args = p.parse_args(argv)

    if args.quick:
        log2n, dims, dim_log2n, steps = [10, 12, 14], [2, 16, 64], 10, args.steps or 50
    else:
        log2n, dims, dim_log2n, steps = list(range(10, 21, 2)), [2, 8, 32, 128, 512, 1024], 14, args.steps or 100
    if args.particles:
        log2n = [int(v) for v in args.particles.split(",")]
    if args.dims:
        dims = [int(v) for v in args.dims.split(",")]
    if args.dim_sweep_log2n is not None:
        dim_log2n = args.dim_sweep_log2n

    sharding = None
    if args.shard and jax.device_count() > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        sharding = NamedSharding(Mesh(np.array(jax.devices()), ("p",)), PartitionSpec("p"))

    configs = [(2**k, 2) for k in log2n] + [(2**dim_log2n, d) for d in dims if (2**dim_log2n, d) not in [(2**k, 2) for k in log2n]]
    rows = []
    header = f"{'N':>8} {'d':>5} {'steps':>5} {'FK p-steps/s':>13} {'plain p-steps/s':>15} {'min GB/s':>8} {'%BW':>6} {'XLA GB/s':>9} {'%BW':>6} {'us/step':>8} {'SW2 FK':>8} {'SW2 plain':>9} {'floor':>7} {'minESS/N':>8}"
    print(f"platform={jax.default_backend()} devices={jax.device_count()} ({jax.devices()[0].device_kind}) sharded={sharding is not None}")
    print(header)
    for n, d in configs:
        row = bench_one(n, d, steps, args.repeats, sharding, args.sw_points)
        rows.append(row)
        frac = row["bandwidth_fraction"]
        xfrac = row["xla_bandwidth_fraction"]
        xbs = row["xla_bytes_per_s"]
        print(
            f"{n:>8} {d:>5} {steps:>5} {row['fk_particle_steps_per_s']:>13.3e} {row['plain_particle_steps_per_s']:>15.3e} "
            f"{row['bytes_per_s'] / 1e9:>8.2f} {'n/a' if frac is None else f'{100 * frac:.1f}':>6} "
            f"{'n/a' if xbs is None else f'{xbs / 1e9:.1f}':>9} {'n/a' if xfrac is None else f'{100 * xfrac:.1f}':>6} "
            f"{1e6 * row['seconds_per_step']:>8.1f} {row['fk_sw2']:>8.4f} "
            f"{row['plain_sw2']:>9.4f} {row['sw2_floor']:>7.4f} {row['min_ess_fraction']:>8.2f}",
            flush=True,
        )
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"fkc_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count(),
        "sharded": sharding is not None, "jax": jax.__version__, "python": platform.python_version(),
        "quick": args.quick, "peak_bandwidth": peak_bandwidth(),
        "problem": "product of two 2-component diagonal Gaussian mixtures, VP, Euler-Maruyama, systematic resampling at ESS<N/2",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
