"""Image demo of probkit.inverse: inpainting and 2x super-resolution of scikit-learn's 8x8 digits.

Prior: the probkit-trained digits score network (``probkit.models.digits.load_pretrained_digits``,
pixels in [-1, 1], VP process). Observations of a held-out digit:

* inpainting — the lower half of the image is missing (``inverse.mask``), s_y = 0.05;
* super-resolution — 2x2 average pooling to 4x4 (``inverse.downsample``), s_y = 0.05.

For each task and method (ensemble, DPS, twisted SMC) at equal NFE (network: a VJP costs 2
evaluations, so DPS/TDS run NFE/3 steps) the figure shows the truth, the observation, the
posterior mean, the posterior standard deviation and posterior samples; the JSON records the
RMSE of the posterior mean to the truth, the data-consistency residual ‖y - A x̂‖/√m / s_y and
wall times.

Usage::

    python benchmarks/inverse_digits.py --quick      # CPU: N = 256, NFE = 300
    python benchmarks/inverse_digits.py              # N = 2048, NFE = 1200

Writes ``benchmarks/results/inverse_digits_<platform>.json`` and ``...png``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probkit import inverse
from probkit.models.digits import load_digits_data, load_pretrained_digits
from probkit.models.nets import make_score_fn

METHODS = ("ensemble", "dps", "twisted_smc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--particles", type=int, default=None)
    ap.add_argument("--nfe", type=int, default=None)
    ap.add_argument("--index", type=int, default=-7, help="which digit of the data set to reconstruct")
    ap.add_argument("--noise", type=float, default=0.05)
    args = ap.parse_args()
    n = args.particles or (256 if args.quick else 2048)
    nfe = args.nfe or (300 if args.quick else 1200)

    params, config, proc = load_pretrained_digits()
    flat_score = make_score_fn(params, config, proc)

    def score(x, t):  # the network acts on (64,); the operators on (8, 8) images
        return jnp.reshape(flat_score(jnp.reshape(x, (64,)), t), (8, 8))

    data = np.asarray(load_digits_data())
    truth = jnp.asarray(data[args.index].reshape(8, 8))
    key = jax.random.PRNGKey(0)
    observed = np.zeros((8, 8), bool)
    observed[:4] = True
    tasks = {
        "inpainting": inverse.mask(observed),
        "super_resolution_x2": inverse.downsample((8, 8), 2),
    }
    results, images = {}, {}
    for task, op in tasks.items():
        y = op.apply(truth) + args.noise * jax.random.normal(jax.random.PRNGKey(1), op.out_shape)
        lik = inverse.gaussian(op, y, args.noise)
        shown_obs = np.asarray(op.adjoint(y)) if task == "inpainting" else np.kron(np.asarray(y), np.ones((2, 2)))
        if task == "inpainting":
            shown_obs = np.where(observed, shown_obs, np.nan)
        images[task] = {"truth": np.asarray(truth), "obs": shown_obs}
        results[task] = {}
        for m in METHODS:
            t0 = time.perf_counter()
            if m == "ensemble":
                out = inverse.ensemble(key, proc, score, lik, n, nfe - 1)  # + 1 score at the start
            elif m == "dps":
                out = inverse.dps(key, proc, score, lik, n, nfe // 3)
            else:
                out = inverse.twisted_smc(key, proc, score, lik, n, nfe // 3 - 1)
            xs = np.asarray(out.resample(jax.random.PRNGKey(2), n))
            wall = time.perf_counter() - t0
            mean, std = xs.mean(0), xs.std(0)
            resid = float(np.sqrt(np.mean((np.asarray(y) - np.asarray(op.apply(jnp.asarray(mean)))) ** 2)) / args.noise)
            rmse = float(np.sqrt(np.mean((mean - np.asarray(truth)) ** 2)))
            results[task][m] = {"rmse_mean": rmse, "residual_over_noise": resid, "nfe": int(out.nfe),
                                "min_ess": float(np.min(np.asarray(out.ess))), "time_s_incl_compile": wall}
            images[task][m] = {"mean": mean, "std": std, "samples": xs[:4]}
            print(f"{task:20s} {m:12s} NFE {out.nfe:5d}  RMSE(mean) {rmse:.3f}  resid/s_y {resid:.2f}  "
                  f"min ESS {results[task][m]['min_ess']:.0f}  {wall:.1f}s", flush=True)

    platform_name = jax.default_backend()
    out_path = Path(__file__).parent / "results" / f"inverse_digits_{platform_name}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"meta": {"platform": platform_name, "num_particles": n, "nfe": nfe,
                                             "noise_std": args.noise, "index": args.index}, "results": results}, indent=1))
    print(f"wrote {out_path}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["truth / obs", "mean", "std", "sample 1", "sample 2", "sample 3", "sample 4"]
    nrows = len(tasks) * len(METHODS)
    fig, axes = plt.subplots(nrows, len(cols) + 1, figsize=(1.5 * (len(cols) + 1), 1.6 * nrows))
    row = 0
    for task in tasks:
        for m in METHODS:
            im = images[task]
            panels = [im["truth"], im["obs"], im[m]["mean"], im[m]["std"], *im[m]["samples"]]
            for j, p in enumerate(panels):
                ax = axes[row, j]
                if j == 3:
                    ax.imshow(p, cmap="magma", vmin=0)
                else:
                    ax.imshow(p, cmap="gray_r", vmin=-1, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(["truth", "observation", *cols[1:]][j], fontsize=8)
            axes[row, 0].set_ylabel(f"{task.split('_')[0]}\n{m}", fontsize=7)
            row += 1
    fig.tight_layout()
    fig.savefig(out_path.with_suffix(".png"), dpi=110)
    print(f"wrote {out_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
