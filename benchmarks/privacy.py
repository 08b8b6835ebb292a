"""Benchmark of probkit.privacy: interval widths vs Clopper-Pearson, posterior cost, privacy-estimates.

1. Width ratio. Audits of a Gaussian mechanism (mu = 2) by a threshold attack, n trials per class,
   R simulated audits per n. For each audit: the 95% Bayesian credible interval of eps
   (equal-tailed and HPD; Jeffreys prior) and the 95% two-sided Clopper-Pearson interval built
   from per-rate intervals (Bonferroni), as in Zanella-Béguelin et al. (2023, arXiv:2206.05199),
   who report credible intervals ~40% narrower. Reported: mean widths and their ratio, and the
   one-sided version (distance from the truth down to the 95% lower bound: the Bayesian 5%
   quantile vs the Clopper-Pearson lower bound). Two attacks: a balanced one (t = mu/2, FPR =
   FNR = 0.16) and a low-FPR one (t = 3, FPR = 0.0013), where CP's upper end is often infinite.
2. Cost of one posterior (numerical integration; Monte Carlo with 1e5 draws) for audits of
   1e3 ... 1e7 trials (compile excluded: each is run once before timing).
3. Agreement and speed against the ``privacy-estimates`` package (Microsoft; the paper's code)
   where it computes the same quantities: ``method="beta"`` (Clopper-Pearson eps interval) and
   ``method="joint-beta"`` (posterior eps interval, independent Jeffreys priors). It is not a
   probkit dependency: install it with ``pip install privacy-estimates``; skipped if missing.

Usage::

    python benchmarks/privacy.py --quick      # CPU smoke run
    python benchmarks/privacy.py              # full sweep

Writes ``benchmarks/results/privacy_<platform>.json`` and prints tables.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from probkit.privacy import (
    GaussianMechanism,
    clopper_pearson_epsilon,
    epsilon_confidence_interval,
    epsilon_from_rates,
    epsilon_posterior,
    simulate_counts,
)

MU = 2.0
DELTA = 1e-5
ATTACKS = {"balanced": 1.0, "low_fpr": 3.0}


def width_study(sizes, reps, seed=0) -> list[dict]:
    mech = GaussianMechanism(MU)
    rows = []
    for name, t in ATTACKS.items():
        fpr, fnr = (float(r) for r in mech.rates(t))
        with jax.enable_x64(True):
            truth = float(epsilon_from_rates(fpr, fnr, DELTA))
        for n in sizes:
            c = simulate_counts(jax.random.PRNGKey(seed + n), mech, n, n, t, reps)
            w_eq, w_hpd, w_cp, gap_b, gap_cp = [], [], [], [], []
            for fp, fn in zip(np.asarray(c.fp).tolist(), np.asarray(c.fn).tolist()):
                post = epsilon_posterior(fp, n, fn, n, DELTA, num_samples=16, num_grid=2048, num_eps=256)
                lo, hi = post.interval(0.95)
                hlo, hhi = post.hpd_interval(0.95)
                clo, chi = epsilon_confidence_interval(fp, n, fn, n, DELTA, 0.95)
                w_eq.append(hi - lo)
                w_hpd.append(hhi - hlo)
                w_cp.append(chi - clo)
                gap_b.append(truth - float(post.quantile(0.05)))
                gap_cp.append(truth - clopper_pearson_epsilon(fp, n, fn, n, DELTA, 0.95))
            w_cp = np.asarray(w_cp)
            finite = np.isfinite(w_cp)
            row = {
                "attack": name, "threshold": t, "fpr": fpr, "fnr": fnr, "eps_attack": truth, "n_per_class": n,
                "reps": reps, "cp_infinite_fraction": float(1 - finite.mean()),
                "width_bayes_equal_tailed": float(np.mean(w_eq)),
                "width_bayes_hpd": float(np.mean(w_hpd)),
                "width_clopper_pearson": float(np.mean(w_cp[finite])) if finite.any() else float("inf"),
                "gap_bayes_lower": float(np.mean(gap_b)),
                "gap_cp_lower": float(np.mean(gap_cp)),
            }
            # ratio over the audits where CP is finite (paired)
            if finite.any():
                row["ratio_equal_tailed"] = float(np.mean(np.asarray(w_eq)[finite]) / np.mean(w_cp[finite]))
                row["ratio_hpd"] = float(np.mean(np.asarray(w_hpd)[finite]) / np.mean(w_cp[finite]))
            else:
                row["ratio_equal_tailed"] = row["ratio_hpd"] = float("nan")
            row["ratio_lower_gap"] = row["gap_bayes_lower"] / row["gap_cp_lower"]
            rows.append(row)
    return rows


def timing_study(sizes, repeats=3) -> list[dict]:
    rows = []
    for n in sizes:
        fp, fn = int(0.02 * n), int(0.3 * n)
        out = {"n_per_class": n}
        for method in ("integration", "monte_carlo"):
            kw = dict(method=method, num_samples=100_000, key=jax.random.PRNGKey(0))
            epsilon_posterior(fp, n, fn, n, DELTA, **kw).interval(0.95)  # compile / warm up
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                p = epsilon_posterior(fp, n, fn, n, DELTA, **kw)
                iv = p.interval(0.95)
                jax.block_until_ready(p.samples)
                ts.append(time.perf_counter() - t0)
            out[f"{method}_seconds"] = float(np.median(ts))
            out[f"{method}_interval"] = list(iv)
        rows.append(out)
    return rows


def privacy_estimates_study(cases, bayes_cases) -> dict:
    try:
        from privacy_estimates import AttackResults, compute_eps_lo_hi
    except Exception as err:  # not installed / not importable
        return {"available": False, "reason": f"{type(err).__name__}: {err}"}
    rows = []
    for (fp, nn, fn, npos) in cases:
        counts = AttackResults(FN=fn, FP=fp, TN=nn - fp, TP=npos - fn)
        t0 = time.perf_counter()
        theirs = compute_eps_lo_hi(counts, DELTA, 0.05, "beta")
        t_theirs = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = epsilon_confidence_interval(fp, nn, fn, npos, DELTA, 0.95)
        t_ours = time.perf_counter() - t0
        row = {"counts": [fp, nn, fn, npos], "quantity": "clopper_pearson_interval", "theirs": [float(v) for v in theirs],
               "ours": list(ours), "max_abs_diff": float(np.max(np.abs(np.subtract(theirs, ours)))),
               "theirs_seconds": t_theirs, "ours_seconds": t_ours}
        rows.append(row)
    for (fp, nn, fn, npos) in bayes_cases:
        counts = AttackResults(FN=fn, FP=fp, TN=nn - fp, TP=npos - fn)
        t0 = time.perf_counter()
        try:
            theirs = compute_eps_lo_hi(counts, DELTA, 0.05, "joint-beta")  # root finding with xtol = 1e-2
        except Exception as err:  # their bracketing root finder can fail (e.g. small audits)
            rows.append({"counts": [fp, nn, fn, npos], "quantity": "posterior_equal_tailed_interval",
                         "error": f"privacy-estimates failed: {type(err).__name__}: {err}"})
            continue
        t_theirs = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = epsilon_posterior(fp, nn, fn, npos, DELTA, num_samples=16).interval(0.95)
        t_ours = time.perf_counter() - t0
        rows.append({"counts": [fp, nn, fn, npos], "quantity": "posterior_equal_tailed_interval",
                     "theirs": [float(v) for v in theirs], "ours": list(ours),
                     "max_abs_diff": float(np.max(np.abs(np.subtract(theirs, ours)))),
                     "theirs_tolerance": 1e-2, "theirs_seconds": t_theirs, "ours_seconds": t_ours})
    import privacy_estimates

    return {"available": True, "version": getattr(privacy_estimates, "__version__", "0.1.0.post1"), "rows": rows}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--skip-privacy-estimates", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        sizes, reps, tsizes = [100, 1000, 10_000], args.reps or 20, [1000, 100_000]
        pe_cases, pe_bayes = [(20, 1000, 300, 1000), (3, 1000, 960, 1000)], [(20, 1000, 300, 1000)]
    else:
        sizes, reps, tsizes = [100, 300, 1000, 3000, 10_000, 100_000, 1_000_000], args.reps or 200, [10**k for k in range(3, 8)]
        pe_cases = [(20, 1000, 300, 1000), (3, 1000, 960, 1000), (1600, 10_000, 1600, 10_000), (13, 10_000, 8400, 10_000)]
        pe_bayes = [(16, 100, 16, 100), (20, 1000, 300, 1000), (1600, 10_000, 1600, 10_000)]

    t0 = time.perf_counter()
    widths = width_study(sizes, reps)
    timings = timing_study(tsizes)
    pe = {"available": False, "reason": "skipped (--skip-privacy-estimates)"} if args.skip_privacy_estimates else privacy_estimates_study(pe_cases, pe_bayes)

    print(f"[{jax.default_backend()}: {jax.devices()[0].device_kind}] Gaussian mechanism mu = {MU}, delta = {DELTA:g}, {reps} audits per row")
    head = (f"{'attack':>9} {'n/class':>9} {'eps':>6} {'Bayes ET':>9} {'Bayes HPD':>9} {'CP':>9} {'ET/CP':>6} {'HPD/CP':>6} "
            f"{'CP inf':>6} {'gap B':>7} {'gap CP':>7} {'gapB/CP':>7}")
    print(head)
    print("-" * len(head))
    for r in widths:
        print(f"{r['attack']:>9} {r['n_per_class']:>9} {r['eps_attack']:>6.3f} {r['width_bayes_equal_tailed']:>9.4f} "
              f"{r['width_bayes_hpd']:>9.4f} {r['width_clopper_pearson']:>9.4f} {r['ratio_equal_tailed']:>6.3f} "
              f"{r['ratio_hpd']:>6.3f} {r['cp_infinite_fraction']:>6.2f} {r['gap_bayes_lower']:>7.3f} "
              f"{r['gap_cp_lower']:>7.3f} {r['ratio_lower_gap']:>7.3f}")
    print("\nposterior cost (median seconds, fp = 2%, fn = 30% of n)")
    print(f"{'n/class':>10} {'integration':>12} {'monte carlo':>12}")
    for r in timings:
        print(f"{r['n_per_class']:>10} {r['integration_seconds']:>12.4f} {r['monte_carlo_seconds']:>12.4f}")
    print("\nprivacy-estimates:", "available" if pe["available"] else f"skipped ({pe['reason']})")
    if pe["available"]:
        for r in pe["rows"]:
            if "error" in r:
                print(f"  {r['quantity']:>32} {str(r['counts']):>28} {r['error']}")
                continue
            print(f"  {r['quantity']:>32} {str(r['counts']):>28} theirs {np.round(r['theirs'], 4)} ours {np.round(r['ours'], 4)} "
                  f"|diff| {r['max_abs_diff']:.2e}  time {r['theirs_seconds']:.3f}s vs {r['ours_seconds']:.3f}s")

    out = {"platform": jax.default_backend(), "device": jax.devices()[0].device_kind, "host": platform.node(),
           "jax": jax.__version__, "mu": MU, "delta": DELTA, "widths": widths, "timings": timings,
           "privacy_estimates": pe, "total_seconds": time.perf_counter() - t0}
    path = Path(args.out) if args.out else Path(__file__).parent / "results" / f"privacy_{jax.default_backend()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
