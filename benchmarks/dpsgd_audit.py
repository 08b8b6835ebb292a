"""End-to-end DP-SGD audit: empirical eps (Bayesian posterior, Clopper-Pearson) vs the accountant.

Trains ``--num-models`` softmax-regression models on scikit-learn's 8x8 digits at once (vmap
over models) with DP-SGD (Poisson sampling, per-example clipping via vmap(grad), Gaussian
noise), each with ``K`` out-of-distribution canaries present with probability 1/2 (K = 1: one
sample per model; K > 1: the multi-sample heuristic of Zanella-Béguelin et al. 2023). A
loss-threshold test on the canaries (threshold chosen on half of the models, counts taken on
the other half) gives the counts; eps is estimated from them and compared with the RDP and PLD
accountants of ``dp_accounting`` for the same noise multiplier, sampling rate and steps.

Usage::

    python benchmarks/dpsgd_audit.py --quick                       # CPU smoke run (< 60 s)
    python benchmarks/dpsgd_audit.py                               # GPU: 16384 models, K = 1 and 16
    python benchmarks/dpsgd_audit.py --num-models 65536 --canaries 1,32 --model-batch 8192

Writes ``benchmarks/results/dpsgd_audit_<platform>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

from probkit.privacy.dpsgd import DPSGDConfig, dpsgd_audit


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small CPU configuration (256 models, K = 1 and 8)")
    p.add_argument("--num-models", type=int, default=None)
    p.add_argument("--canaries", default=None, help="comma-separated canaries per model, e.g. 1,16")
    p.add_argument("--num-train", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--sampling-rate", type=float, default=None)
    p.add_argument("--noise-multiplier", type=float, default=None)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--learning-rate", type=float, default=2.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--model-batch", type=int, default=None, help="train models in chunks of this size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/dpsgd_audit_<platform>.json)")
    args = p.parse_args(argv)

    if args.quick:
        defaults = dict(num_models=256, canaries="1,8", num_train=256, steps=100, sampling_rate=0.1, noise_multiplier=1.5)
    else:
        # same privacy parameters as --quick (so the accountant's eps is the same), 64x the models
        defaults = dict(num_models=16384, canaries="1,16", num_train=256, steps=100, sampling_rate=0.1,
                        noise_multiplier=1.5, model_batch=4096)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    rows = []
    for k in [int(v) for v in str(args.canaries).split(",")]:
        cfg = DPSGDConfig(num_models=args.num_models, num_train=args.num_train, canaries_per_model=k, steps=args.steps,
                          sampling_rate=args.sampling_rate, noise_multiplier=args.noise_multiplier,
                          clip_norm=args.clip_norm, learning_rate=args.learning_rate, delta=args.delta,
                          model_batch=args.model_batch)
        t0 = time.perf_counter()
        res = dpsgd_audit(jax.random.PRNGKey(args.seed), cfg)
        row = res.summary()
        row["total_seconds"] = time.perf_counter() - t0
        rows.append(row)

    print(f"DP-SGD audit on digits: {args.num_models} models, {args.num_train} examples, {args.steps} steps, "
          f"q = {args.sampling_rate}, sigma = {args.noise_multiplier}, delta = {args.delta:g} "
          f"[{jax.default_backend()}: {jax.devices()[0].device_kind}]")
    head = f"{'K':>4} {'fp/neg':>12} {'fn/pos':>12} {'post. mean':>10} {'95% credible':>18} {'CP lower':>9} {'RDP eps':>8} {'PLD eps':>8} {'test acc':>8} {'train s':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["counts"]
        lo, hi = r["eps_credible_interval"]
        print(f"{r['config']['canaries_per_model']:>4} {c['fp']:>5}/{c['n_negative']:<6} {c['fn']:>5}/{c['n_positive']:<6} "
              f"{r['eps_posterior_mean']:>10.3f} {f'[{lo:.3f}, {hi:.3f}]':>18} {r['eps_clopper_pearson_lower']:>9.3f} "
              f"{r['eps_accountant_rdp']:>8.3f} {r['eps_accountant_pld']:>8.3f} {r['test_accuracy']:>8.3f} {r['train_seconds']:>8.1f}")

    out = {
        "platform": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "host": platform.node(),
        "jax": jax.__version__,
        "args": vars(args),
        "runs": rows,
    }
    path = Path(args.out) if args.out else Path(__file__).parent / "results" / f"dpsgd_audit_{jax.default_backend()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
