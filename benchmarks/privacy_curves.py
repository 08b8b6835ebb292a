"""Privacy curves from raw scores: coverage of the credible bands, and time against privacy-estimates.

1. Coverage. Simulated audits of a Gaussian mechanism (non-members N(0, 1), members N(mu, 1)),
   whose true privacy curve eps(delta) = gdp_epsilon(delta, mu) is known. Each audit runs
   ``audit_from_scores`` (threshold per delta chosen on a random half, eps estimated on the
   other half, 90% bands). Reported per (mu, n, delta): the fraction of audits whose band holds
   (a) the true eps of the attack actually chosen (its exact rates are known), (b) the
   mechanism's eps(delta), (c) the mu-GDP band holding eps(delta); how often the band lies wholly
   above the mechanism's eps (its lower end is a lower end for the mechanism too, so this should
   stay below (1 - level) / 2); the simultaneous coverage of
   all deltas at once (pointwise bands and Bonferroni bands); the mean band width; and the
   fraction of audits whose Clopper-Pearson lower bound exceeds the truth (should be <= 10%).
2. Time on the same scores against ``compute_privacy_curve_lo_hi`` of Microsoft's
   ``privacy-estimates`` (responsible-ai-toolbox-privacy; Clopper-Pearson eps interval at every
   ROC threshold, maximum over thresholds, parallel over deltas with parmap). It is not a
   probkit dependency and is never vendored: point ``--reference`` at a checkout outside the
   repository (and its dependencies statsmodels, parmap, shapely, scikit-learn); skipped if it
   does not import. probkit is timed cold (first call in the process, compilation included) and
   warm, for the honest audit (100 candidate thresholds, split 0.5) and for the in-sample
   maximum over every distinct score (the reference's threshold set; ``split=None``).

Usage::

    python benchmarks/privacy_curves.py --quick
    python benchmarks/privacy_curves.py --reference /path/to/privacy-estimates[:/path/to/deps]

Writes ``benchmarks/results/privacy_curves_<platform>.json`` and prints two tables.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from probkit.privacy import GaussianMechanism, audit_from_scores, epsilon_from_rates, simulate_scores

DELTAS = [1e-3, 1e-2, 0.05, 0.1, 0.2]
LEVEL = 0.9


def _data(seed: int, mu: float, n: int):
    neg, pos = simulate_scores(jax.random.PRNGKey(seed), GaussianMechanism(mu), n, n)
    return np.concatenate([np.asarray(neg), np.asarray(pos)]).astype(np.float64), np.r_[np.zeros(n), np.ones(n)]


def coverage_study(configs, reps: int, seed0: int = 0) -> list[dict]:
    rows = []
    d = np.asarray(DELTAS)
    for mu, n in configs:
        mech = GaussianMechanism(mu)
        truth = np.array([mech.epsilon(x) for x in d])
        stats = {k: [] for k in ("attack", "mech", "gdp", "width", "cp_above", "band_above", "sim_mech", "sim_mech_bonf", "gap")}
        t0 = time.perf_counter()
        for r in range(reps):
            s, lab = _data(seed0 + 7919 * r + int(1000 * mu) + n, mu, n)
            key = jax.random.PRNGKey(seed0 + r)
            a = audit_from_scores(s, lab, deltas=d, level=LEVEL, key=key)
            b = audit_from_scores(s, lab, deltas=d, level=LEVEL, key=key, simultaneous=True, gdp=False)
            fpr, fnr = (np.asarray(v, np.float64) for v in mech.rates(a.thresholds))
            with jax.enable_x64(True):
                attack = np.asarray(epsilon_from_rates(fpr, fnr, d))  # symmetric: flip-invariant
            in_mech = (a.eps_lower <= truth) & (truth <= a.eps_upper)
            stats["attack"].append((a.eps_lower <= attack) & (attack <= a.eps_upper))
            stats["mech"].append(in_mech)
            stats["gdp"].append((np.array(a.gdp["eps_lower"]) <= truth) & (truth <= np.array(a.gdp["eps_upper"])))
            stats["width"].append(a.eps_upper - a.eps_lower)
            stats["cp_above"].append(a.cp_lower > truth)
            stats["band_above"].append(a.eps_lower > truth)
            stats["sim_mech"].append(in_mech.all())
            stats["sim_mech_bonf"].append(((b.eps_lower <= truth) & (truth <= b.eps_upper)).all())
            stats["gap"].append(truth - attack)
        m = {k: np.mean(np.asarray(v, np.float64), axis=0) for k, v in stats.items()}
        for j, delta in enumerate(d):
            rows.append({
                "mu": mu, "n_per_class": n, "n_heldout_per_class": n // 2, "delta": float(delta), "reps": reps,
                "level": LEVEL, "eps_true": float(truth[j]), "mean_gap_truth_minus_attack": float(m["gap"][j]),
                "coverage_attack": float(m["attack"][j]), "coverage_mechanism": float(m["mech"][j]),
                "coverage_gdp_band": float(m["gdp"][j]), "mean_band_width": float(m["width"][j]),
                "cp_lower_above_truth": float(m["cp_above"][j]),
                "band_lower_above_truth": float(m["band_above"][j]),
                "simultaneous_coverage_pointwise_bands": float(m["sim_mech"]),
                "simultaneous_coverage_bonferroni_bands": float(m["sim_mech_bonf"]),
                "seconds_per_audit": (time.perf_counter() - t0) / reps / 2,
            })
    return rows


def _load_reference(paths: str | None):
    if paths:
        for p in reversed(paths.split(":")):
            sys.path.insert(0, p)
    try:
        from privacy_estimates import compute_privacy_curve_lo_hi
    except Exception as err:  # not available
        return None, f"{type(err).__name__}: {err}"
    return compute_privacy_curve_lo_hi, None


def timing_study(sizes, reference, mu: float = 1.0, seed: int = 123) -> list[dict]:
    rows = []
    for i, n in enumerate(sizes):
        s, lab = _data(seed + n, mu, n)
        row = {"n_per_class": n, "num_deltas": len(DELTAS), "mu": mu}
        t0 = time.perf_counter()
        a = audit_from_scores(s, lab, deltas=DELTAS, level=LEVEL)
        t1 = time.perf_counter()
        a = audit_from_scores(s, lab, deltas=DELTAS, level=LEVEL, key=jax.random.PRNGKey(1))
        t2 = time.perf_counter()
        if i == 0:
            row["probkit_honest_cold_seconds"] = t1 - t0  # first call in the process: compilation included
        row["probkit_honest_seconds"] = t2 - t1
        row["probkit_honest_eps_median"] = a.eps_median.tolist()
        row["probkit_honest_cp_lower"] = a.cp_lower.tolist()
        n_unique = np.unique(s).size
        if n <= 50_000:
            t0 = time.perf_counter()
            b = audit_from_scores(s, lab, deltas=DELTAS, level=0.95, split=None, correction="none",
                                  thresholds=np.unique(s), gdp=False)
            row["probkit_insample_all_thresholds_seconds"] = time.perf_counter() - t0
            row["probkit_insample_cp_lower_uncorrected"] = b.cp_lower.tolist()
            row["num_thresholds_insample"] = int(n_unique)
        row["eps_true"] = [GaussianMechanism(mu).epsilon(x) for x in DELTAS]
        if reference is not None and n <= 5_000:  # the reference is O(n^2): minutes at 5000 per class
            t0 = time.perf_counter()
            lo, hi = reference(s, lab.astype(int), DELTAS, alpha=0.05, method="beta")
            row["reference_seconds"] = time.perf_counter() - t0
            row["reference_eps_lo"] = np.asarray(lo).tolist()
            row["reference_eps_hi"] = np.asarray(hi).tolist()
            row["speedup_honest"] = row["reference_seconds"] / row["probkit_honest_seconds"]
            if "probkit_insample_all_thresholds_seconds" in row:
                row["speedup_insample"] = row["reference_seconds"] / row["probkit_insample_all_thresholds_seconds"]
        rows.append(row)
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--reference", default=None, help="path(s) (':'-separated) to import privacy_estimates from")
    p.add_argument("--skip-coverage", action="store_true", help="keep the coverage rows of an existing --out file")
    p.add_argument("--skip-timing", action="store_true", help="keep the timing rows of an existing --out file")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        configs, reps, sizes = [(1.0, 2000)], args.reps or 10, [1000, 5000]
    else:
        configs, reps, sizes = [(1.0, 2000), (1.0, 20_000), (2.0, 20_000)], args.reps or 100, [1000, 5000, 20_000, 500_000]
    reference, why = _load_reference(args.reference)
    t0 = time.perf_counter()
    path = Path(args.out) if args.out else Path(__file__).parent / "results" / f"privacy_curves_{jax.default_backend()}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    # timing first: its cold call is this process's first audit (compilation included)
    timings = old.get("timings", []) if args.skip_timing else timing_study(sizes, reference)
    coverage = old.get("coverage", []) if args.skip_coverage else coverage_study(configs, reps)

    dev = f"[{jax.default_backend()}: {jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}]"
    reps = coverage[0]["reps"] if coverage else reps
    if coverage:
        print(f"{dev} coverage of {100 * LEVEL:g}% bands, Gaussian mechanism, {reps} audits per row (split 0.5)")
        head = (f"{'mu':>4} {'n/class':>8} {'delta':>7} {'eps':>6} {'attack':>7} {'mech':>6} {'GDP':>6} {'width':>7} "
                f"{'CP>true':>7} {'lo>true':>7} {'gap':>6}")
        print(head)
        print("-" * len(head))
        for r in coverage:
            print(f"{r['mu']:>4g} {r['n_per_class']:>8} {r['delta']:>7g} {r['eps_true']:>6.3f} {r['coverage_attack']:>7.3f} "
                  f"{r['coverage_mechanism']:>6.3f} {r['coverage_gdp_band']:>6.3f} {r['mean_band_width']:>7.3f} "
                  f"{r['cp_lower_above_truth']:>7.3f} {r['band_lower_above_truth']:>7.3f} {r['mean_gap_truth_minus_attack']:>6.3f}")
        seen = set()
        for r in coverage:
            if (r["mu"], r["n_per_class"]) not in seen:
                seen.add((r["mu"], r["n_per_class"]))
                print(f"  mu={r['mu']:g} n={r['n_per_class']}: all {len(DELTAS)} deltas covered at once: pointwise bands "
                      f"{r['simultaneous_coverage_pointwise_bands']:.3f}, Bonferroni bands {r['simultaneous_coverage_bonferroni_bands']:.3f}")
    print(f"\n{dev} time for a privacy curve of {len(DELTAS)} deltas (seconds); reference: "
          + ("privacy-estimates compute_privacy_curve_lo_hi" if reference else f"not available ({why})"))
    print(f"{'n/class':>8} {'probkit honest':>15} {'in-sample all t':>16} {'#t':>7} {'reference':>10} {'speedup':>8}")
    for r in timings:
        ins = r.get("probkit_insample_all_thresholds_seconds", float("nan"))
        print(f"{r['n_per_class']:>8} {r['probkit_honest_seconds']:>15.3f} {ins:>16.3f} {r.get('num_thresholds_insample', 0):>7} "
              f"{r.get('reference_seconds', float('nan')):>10.2f} {r.get('speedup_insample', float('nan')):>8.1f}")
    if timings and "probkit_honest_cold_seconds" in timings[0]:
        print(f"  first call (compilation included): {timings[0]['probkit_honest_cold_seconds']:.2f} s")

    out = {"platform": jax.default_backend(), "device": jax.devices()[0].device_kind, "host": platform.node(),
           "cpu_count": __import__("os").cpu_count(), "jax": jax.__version__, "deltas": DELTAS, "level": LEVEL,
           "coverage": coverage, "timings": timings,
           "reference": old.get("reference") if args.skip_timing else {"available": reference is not None, "reason": why,
                         "function": "privacy_estimates.compute_privacy_curve_lo_hi(alpha=0.05, method='beta')"},
           "total_seconds": time.perf_counter() - t0}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
