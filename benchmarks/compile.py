"""Compile once, run many: first call vs second call of every public sampler.

For each entry point: the first call (trace + XLA compile + run), the second call with NEW arrays
of the same shapes (new key, new mixture parameters, new observation y / operator matrix, new
beta / guidance / step size), and the compiled program's own run time (the same call inside a
user ``jax.jit``, timed after its own compile: dispatch + run, no Python wrapper). Then the
compile time (first call - run time) of ``inverse.ensemble`` and ``fkc.anneal`` against the
dimension d and the number of particles N. Prints tables, writes JSON.

    python benchmarks/compile.py                      # CPU, small sizes (< 3 min on one core)
    python benchmarks/compile.py --gpu --out benchmarks/results/compile_gpu.json   # + d = 800 inverse
    python benchmarks/compile.py --legacy-d800 ...    # only the d = 800 inverse first/second call
    PROBKIT_TRITON_GEMM=1 python benchmarks/compile.py --only-d800 --out ...   # d = 800 with Triton GEMMs
                                                      # (public API only: runs on older probkit too)

``--cache DIR`` turns on JAX's persistent compilation cache (``probkit.enable_compilation_cache``)
and reports the first call of a *fresh process* separately when run twice.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import probkit
from probkit import dmcmc, fkc, inverse, smc
from probkit.diffusion import VP, time_grid
from probkit.models import GaussianMixture

PROC = VP()


def _mixture(seed: int, d: int, k: int = 2) -> GaussianMixture:
    r = np.random.default_rng(seed)
    w = r.uniform(0.3, 1.0, size=k)
    return GaussianMixture(w / w.sum(), 2.0 * r.normal(size=(k, d)), 0.1 + r.uniform(size=(k, d)))


def _problem(seed: int, d: int, dy: int):
    gm = _mixture(seed, d)
    r = np.random.default_rng(1000 + seed)
    a = r.normal(size=(dy, d)) / np.sqrt(d)
    y = r.normal(size=dy)
    return gm, a, y


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(jax.tree.leaves(out))
    return time.perf_counter() - t0, out


def entry_points(d: int, n: int, k: int):
    """name -> (call(seed) using the public API; jittable(key, problem arrays) for the run time)."""
    dy = max(1, d // 4)
    op = inverse.dense(_problem(0, d, dy)[1])

    def args(seed):
        gm, a, y = _problem(seed, d, dy)
        gm2 = _mixture(seed + 77, d)
        return jax.random.PRNGKey(seed), gm, gm2, inverse.dense(a), jnp.asarray(y)

    def anneal(key, gm, gm2, op_, y, beta=2.0):
        return fkc.anneal(key, PROC, gm.score_fn(PROC), beta, n, k, shape=(d,))

    def product(key, gm, gm2, op_, y):
        return fkc.product(key, PROC, [gm.score_fn(PROC), gm2.score_fn(PROC)], n, k, shape=(d,))

    def geometric(key, gm, gm2, op_, y):
        return fkc.geometric(key, PROC, [gm.score_fn(PROC), gm2.score_fn(PROC)], jnp.array([0.6, 0.8]), n, k,
                             shape=(d,))

    def cfg(key, gm, gm2, op_, y):
        return fkc.cfg(key, PROC, gm.score_fn(PROC), gm2.score_fn(PROC), 2.0, n, k, shape=(d,))

    def anneal_mala(key, gm, gm2, op_, y):
        return fkc.anneal(key, PROC, gm.score_fn(PROC), 2.0, n, k, shape=(d,), logdensity_fn=gm.logdensity_fn(PROC),
                          corrector=smc.mala(0.01))

    def ensemble(key, gm, gm2, op_, y):
        return inverse.ensemble(key, PROC, gm.score_fn(PROC), inverse.gaussian(op_, y, 0.5), n, k)

    def dps(key, gm, gm2, op_, y):
        return inverse.dps(key, PROC, gm.score_fn(PROC), inverse.gaussian(op_, y, 0.5), n, k)

    def twisted_smc(key, gm, gm2, op_, y):
        return inverse.twisted_smc(key, PROC, gm.score_fn(PROC), inverse.gaussian(op_, y, 0.5), n, k)

    def dlg(key, gm, gm2, op_, y):
        return dmcmc.dlg(key, PROC, gm.score_fn(PROC), (d,), logdensity_fn=gm.logdensity_fn(PROC),
                         num_chains=max(2, n // 16), num_samples=4, burn_in=k, t_move=dmcmc.NoiseGrid(num_levels=32),
                         denoise=dmcmc.Denoise(num_steps=5))

    def sample(key, gm, gm2, op_, y):
        return probkit.sample(key, PROC, gm.score_fn(PROC), (d,), n, k)

    model, target = fkc.fkc_model(PROC, (_mixture(0, d).score_fn(PROC),), jnp.array([2.0]), (d,))

    ts = time_grid(PROC, k)

    def run_smc(key, gm, gm2, op_, y):  # one user-built model object (closures), a new key
        return smc.run_smc(key, model, n, ts, target=target)

    fns = dict(anneal=anneal, anneal_mala=anneal_mala, product=product, geometric=geometric, cfg=cfg,
               ensemble=ensemble, dps=dps, twisted_smc=twisted_smc, dlg=dlg, sample=sample, run_smc=run_smc)
    del op
    return fns, args


def first_second(fn, args, jit_runtime: bool = True) -> dict:
    jax.clear_caches()  # a true first call (entry points may share a program, e.g. product / geometric)
    first, _ = _timed(fn, *args(0))
    second, _ = _timed(fn, *args(1))
    row = {"first_s": first, "second_s": second}
    if jit_runtime:
        jf = eqx.filter_jit(fn)  # jax.jit with the non-array leaves (names, shapes) static
        _timed(jf, *args(2))  # compile the user-jitted copy
        runs = [_timed(jf, *args(3 + i))[0] for i in range(3)]
        row["run_s"] = float(np.median(runs))
        row["speedup"] = first / second
        row["overhead_s"] = second - row["run_s"]
    return row


def table(rows: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'entry point':<14} {'first (s)':>10} {'second (s)':>11} {'run (s)':>9} {'first/second':>13} {'second-run (ms)':>16}")
    for name, r in rows.items():
        print(f"{name:<14} {r['first_s']:>10.3f} {r['second_s']:>11.4f} {r.get('run_s', float('nan')):>9.4f} "
              f"{r.get('speedup', r['first_s'] / r['second_s']):>13.0f} {1e3 * r.get('overhead_s', float('nan')):>16.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="GPU sizes and the d = 800 inverse compile")
    ap.add_argument("--legacy-d800", action="store_true", help="only the d = 800 inverse first/second call")
    ap.add_argument("--only-d800", action="store_true", help="only the d = 800 section (e.g. with PROBKIT_TRITON_GEMM=1)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no sweep (tests the script)")
    ap.add_argument("--cache", default=None, help="persistent compilation cache directory")
    ap.add_argument("--sizes", type=int, nargs=3, default=None, metavar=("D", "N", "K"),
                    help="entry-point table at these sizes, and no size sweep")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.cache:
        probkit.enable_compilation_cache(a.cache)
    dev = jax.devices()[0]
    result = {"device": f"{dev.platform}: {getattr(dev, 'device_kind', '')}", "jax": jax.__version__,
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "cache": a.cache,
              "mixture_compiler_options": getattr(getattr(probkit, "_jit", None), "FAST_COMPILE_OPTIONS", None),
              "triton_gemm_env": os.environ.get("PROBKIT_TRITON_GEMM")}
    t_start = time.perf_counter()
    out = a.out or ("benchmarks/results/compile_gpu.json" if a.gpu else "benchmarks/results/compile_cpu.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)

    def save():  # after every section, so a run cut short keeps what it measured
        result["total_s"] = time.perf_counter() - t_start
        with open(out, "w") as fh:
            json.dump(result, fh, indent=1)

    if (a.legacy_d800 or a.only_d800 or a.gpu) and a.sizes is None:
        result["d800"] = d800(legacy=a.legacy_d800)
        save()
    if not (a.legacy_d800 or a.only_d800):
        d, n, k = a.sizes or ((64, 4096, 100) if a.gpu else ((2, 16, 3) if a.smoke else (4, 256, 20)))
        fns, args = entry_points(d, n, k)
        rows = {}
        for name, fn in fns.items():
            rows[name] = first_second(fn, args)
            result["entry_points"] = {"d": d, "num_particles": n, "num_steps": k, "rows": rows}
            save()
        table(rows, f"first vs second call (new arrays, same shapes), d={d}, N={n}, K={k}, {result['device']}")
        sweep = []
        dims, ns = ([8, 80, 800], [1024, 16384]) if a.gpu else (([], []) if a.smoke else ([2, 16, 64], [64, 1024]))
        if a.sizes:
            dims, ns = [], []
        for name in ("ensemble",) if a.gpu else ("ensemble", "anneal"):
            for dd in dims:
                for nn in ns:
                    f, ar = entry_points(dd, nn, 20)
                    r = first_second(f[name], ar)
                    r.update(entry=name, d=dd, num_particles=nn, compile_s=r["first_s"] - r["run_s"])
                    sweep.append(r)
                    result["compile_vs_size"] = sweep
                    save()
                    print(f"{name:<10} d={dd:<4} N={nn:<6} compile {r['compile_s']:.2f} s  second {r['second_s']*1e3:.1f} ms"
                          f"  run {r['run_s']*1e3:.1f} ms", flush=True)
    save()
    print(f"total {result['total_s']:.1f} s; wrote {out}")


def d800(legacy: bool) -> dict:
    """The README's d = 800 inverse problem (benchmarks/inverse.py: 25-component mixture prior,
    random A of 4 x 800, N = 4096, NFE 1000): first call, then a second call with a new
    observation y. ``legacy``: the ensemble sampler only (older probkit recompiles every call)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_inverse", os.path.join(os.path.dirname(__file__), "inverse.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d, dy, n, nfe = 800, 4, 4096, 1000
    rows = {}
    backend = {"s": 0.0}  # XLA backend compile seconds (jax.monitoring), per call
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: backend.__setitem__("s", backend["s"] + secs) if event.endswith("backend_compile_duration") else None)
    for name in ("ensemble",) if legacy else ("ensemble", "twisted_smc"):
        fn, steps = getattr(inverse, name), (nfe if name == "ensemble" else nfe // 2 - 1)
        times, compiles = [], []
        for seed in (0, 1)[: 1 if legacy else 2]:
            backend["s"] = 0.0
            gm, a, y = bench.problem(seed, d, dy, 0.5)  # new A, y and prior weights each call
            t, _ = _timed(lambda: fn(jax.random.PRNGKey(seed), PROC, gm.score_fn(PROC), inverse.gaussian(a, y, 0.5),
                                     n, steps, logdensity_fn=gm.logdensity_fn(PROC)))
            times.append(t)
            compiles.append(backend["s"])
        rows[name] = {"first_s": times[0], "second_s": times[1] if len(times) > 1 else None,
                      "first_backend_compile_s": compiles[0]}
        print(f"d=800 {name}: first {times[0]:.2f} s (XLA backend compile {compiles[0]:.2f} s)"
              + (f", second {times[1]:.3f} s" if len(times) > 1 else ""), flush=True)
    return {"d": d, "d_y": dy, "num_particles": n, "nfe": nfe, "legacy_api": legacy, "rows": rows}


if __name__ == "__main__":
    main()
