"""Classifier-free guidance on the 8x8 digits: FKC-CFG against plain CFG at the same NFE.

    python benchmarks/guidance.py --quick                        # CPU smoke run (tiny)
    python benchmarks/guidance.py --out benchmarks/results/guidance_gpu.json --fig-dir docs/img

For each guidance weight w in {1, 2, 4, 8} and each class c of the shipped class-conditional
digits model (``probkit.models.conditional``), sample the geometric target
p(x)^(1-w) p(x|c)^w with ``probkit.fkc.cfg``:

* ``plain``: the CFG proposal alone (``weighted=False``): the reverse SDE with the guided score
  (1 - w) s_uncond + w s_cond, i.e. ordinary classifier-free guidance;
* ``fkc``: the same proposal with the Feynman-Kac weights and adaptive resampling (ESS < N/2).

Both use the same grid and the same two network evaluations per step (same NFE). All ten
classes run as one vmapped, jitted program per (w, method); parameters and labels are traced,
so later seeds reuse the compiled program (first-call and later-call times are recorded).

Metrics per class (then averaged over classes and seeds), all on samples clipped to [-1, 1]:

* ``acc`` / ``conf``: the shipped classifier's accuracy on the requested class and its mean
  probability of that class (weighted by the particle weights for FKC);
* ``div``: mean pairwise distance of M equally weighted draws (FKC: systematic resampling of
  the weighted particles; duplicates count, as a user who resamples would get them), M = the
  class's number of training images; ``div_w``: the weighted estimate of E|X - X'|;
* ``cov``: coverage (Naeem et al. 2020, k = 5) of the class's test images by those M draws;
* ``sw2`` / ``mmd``: sliced Wasserstein-2 and MMD (fixed RBF bandwidths from the test set) of
  the weighted samples to the class's test images;
* ``ess``: mean over steps and classes of ESS/N, its minimum, and the number of resampling steps.

A ``data`` reference row gives the same metrics for the class's training images against its
test images (the finite-sample floor). A composition demo samples products of two
class-conditionals p(x|c1) p(x|c2) with ``probkit.fkc.product``. Writes the JSON and PNGs
(sample grid, ESS over time, product samples).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from probkit import fkc  # noqa: E402
from probkit.diagnostics.metrics import median_heuristic, mmd, sliced_wasserstein  # noqa: E402
from probkit.models import conditional as C  # noqa: E402
from probkit.models.digits import digits_to_images  # noqa: E402

BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


# ----------------------------------------------------------------------------- samplers
@functools.partial(jax.jit, static_argnames=("config", "process", "w", "weighted", "n", "k", "eta"))
def run_cfg(keys, params, labels, *, config, process, w, weighted, n, k, eta=1.0):
    """FKC-CFG (or plain CFG) for a batch of labels: one compiled program for all classes."""

    def one(key, label):
        su = C.conditional_score_fn(params, config, process, None)
        sc = C.conditional_score_fn(params, config, process, label)
        out = fkc.cfg(key, process, su, sc, w, n, k, shape=(64,), weighted=weighted, eta=eta)
        return out.particles, out.log_weights, out.ess, out.resampled

    return jax.vmap(one)(keys, labels)


@functools.partial(jax.jit, static_argnames=("config", "process", "weighted", "n", "k", "eta"))
def run_product(keys, params, pairs, *, config, process, weighted, n, k, eta=1.0):
    """p(x|c1) p(x|c2) by FKC (or the summed-score SDE) for a batch of label pairs."""

    def one(key, pair):
        s1 = C.conditional_score_fn(params, config, process, pair[0])
        s2 = C.conditional_score_fn(params, config, process, pair[1])
        out = fkc.product(key, process, (s1, s2), n, k, shape=(64,), weighted=weighted, eta=eta)
        return out.particles, out.log_weights, out.ess, out.resampled, out.log_evidence

    return jax.vmap(one)(keys, pairs)


@functools.partial(jax.jit, static_argnames=("process", "w", "weighted", "n", "k", "eta"))
def run_gmm_cfg(keys, weights, means, covs, *, process, w, weighted, n, k, eta=1.0):
    """FKC-CFG / plain CFG with the exact scores of a class-conditional Gaussian mixture
    (one full-covariance Gaussian per class), for every class at once."""
    from probkit.models import GaussianMixture

    pu = GaussianMixture(weights, means, covs, validate=False)

    def one(key, mean, cov):
        pc = GaussianMixture(jnp.ones(1), mean[None], cov[None], validate=False)
        out = fkc.cfg(key, process, pu.score_fn(process), pc.score_fn(process), w, n, k, shape=(means.shape[1],),
                      weighted=weighted, eta=eta, logdensity_fns=(pu.logdensity_fn(process), pc.logdensity_fn(process)))
        return out.particles, out.log_weights, out.ess, out.log_evidence

    return jax.vmap(one)(keys, means, covs)


def exact_geometric_samples(key, pu, c, w, process, t, m):
    """Exact draws of q ∝ p_c^w p_u^(1-w) at time t for a class-conditional mixture, by rejection
    from p_c: q / p_c ∝ p(c|x)^(w-1) <= 1 (w >= 1), so accept x ~ p_c with probability
    p_t(c|x)^(w-1). Also returns log ∫ p_c^w p_u^(1-w) = (1-w) log pi_c + log E_{p_c}[p(c|x)^(w-1)]."""
    from probkit.models import GaussianMixture

    nu = pu.noised(process, t)
    pc = GaussianMixture(jnp.ones(1), nu.means[c:c + 1], nu.covs[c:c + 1], validate=False)
    k1, k2 = jax.random.split(key)
    prop = pc.sample(k1, 20 * m)
    log_post = jax.vmap(lambda x: nu.component_log_probs(x)[c] - nu.log_prob(x))(prop)  # log p_t(c|x)
    log_acc = (w - 1.0) * log_post
    keep = np.asarray(jnp.log(jax.random.uniform(k2, (prop.shape[0],))) < log_acc)
    log_z = float((1.0 - w) * jnp.log(pu.weights[c]) + jax.nn.logsumexp(log_acc) - jnp.log(prop.shape[0]))
    x = np.asarray(prop)[keep][:m]
    return x, log_z, float(keep.mean())


# ----------------------------------------------------------------------------- metrics
def _pdist(x: np.ndarray) -> np.ndarray:
    sq = (x**2).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))


def coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> float:
    """Fraction of real points whose k-NN ball (among the real points) holds a fake point."""
    d_rr = _pdist(real)
    radius = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    d_rf = np.sqrt(np.maximum((real**2).sum(1)[:, None] + (fake**2).sum(1)[None, :] - 2 * real @ fake.T, 0.0))
    return float(np.mean(d_rf.min(1) <= radius))


def systematic(key, w: np.ndarray, m: int) -> np.ndarray:
    u = (float(jax.random.uniform(key)) + np.arange(m)) / m
    return np.minimum(np.searchsorted(np.cumsum(w), u), len(w) - 1)


def class_metrics(x, lw, c, clf, ref, m, key, bandwidths) -> dict:
    """Metrics of weighted samples ``(x, lw)`` of class ``c`` against ``ref`` (its test images)."""
    x = np.clip(np.asarray(x, np.float64), -1.0, 1.0)
    w = np.exp(np.asarray(lw, np.float64) - np.max(lw))
    w /= w.sum()
    probs = np.asarray(jax.nn.softmax(C.classifier_logits(*clf, jnp.asarray(x, jnp.float32)), -1), np.float64)
    k_res, k_sw = jax.random.split(key)
    draws = x[systematic(k_res, w, m)] if not np.allclose(w, w[0]) else x[:m]
    d = _pdist(draws)
    dx = _pdist(x)
    div_w = float((w @ dx @ w) / max(1.0 - np.sum(w**2), 1e-12))
    xj, rj = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    lwj = jnp.asarray(np.log(np.maximum(w, 1e-300)), jnp.float32)
    return {
        "acc": float(w @ (probs.argmax(1) == c)),
        "conf": float(w @ probs[:, c]),
        "div": float(d[np.triu_indices(m, 1)].mean()),
        "div_w": div_w,
        "unique": float(len(np.unique(draws, axis=0)) / m),
        "cov": coverage(np.asarray(ref, np.float64), draws),
        "sw2": float(sliced_wasserstein(xj, rj, k_sw, 256, x_log_weights=lwj)),
        "mmd": float(mmd(xj, rj, bandwidths, x_log_weights=lwj)),
    }


def mosaic(x: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(rows * cols, 64) samples -> one image with a white gap between digits."""
    imgs = digits_to_images(np.clip(x, -1, 1)).reshape(rows, cols, 8, 8)
    out = np.zeros((rows * (8 + pad) + pad, cols * (8 + pad) + pad))
    for i in range(rows):
        for j in range(cols):
            out[pad + i * (8 + pad): pad + i * (8 + pad) + 8, pad + j * (8 + pad): pad + j * (8 + pad) + 8] = imgs[i, j]
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--num-particles", type=int, default=1024, help="particles per class")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--model-dir", default=None, help="folder with digits_cond_vp.* and digits_classifier.* "
                                                      "(default: the shipped models)")
    p.add_argument("--pairs", default="1-7,3-8,4-9,0-6,2-3", help="class pairs for the product demo")
    p.add_argument("--scaling-n", type=int, nargs="*", default=[256, 4096],
                   help="extra FKC runs (seed 0) at w = --scaling-w with these particle counts per class")
    p.add_argument("--scaling-w", type=float, default=4.0)
    p.add_argument("--gmm-control", action=argparse.BooleanOptionalAction, default=True,
                   help="also run both samplers with the exact scores of a per-class Gaussian fit to the digits")
    p.add_argument("--out", default=None)
    p.add_argument("--fig-dir", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.num_particles, args.steps, args.seeds, args.weights = 32, 30, 1, [1.0, 4.0]
        args.scaling_n = [64]
    platform = jax.default_backend()
    out_path = args.out or os.path.join(ROOT, "benchmarks", "results", f"guidance{'_quick' if args.quick else ''}_{platform}.json")
    fig_dir = args.fig_dir or os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)

    if args.model_dir:
        params, config, process = C.load_conditional_score_model(os.path.join(args.model_dir, "digits_cond_vp"))
        clf = C.load_classifier(os.path.join(args.model_dir, "digits_classifier"))
    else:
        params, config, process = C.load_pretrained_conditional_digits()
        clf = C.load_pretrained_digits_classifier()
    x_tr, y_tr, x_te, y_te = C.load_digits_split()
    classes = np.arange(10)
    refs = [x_te[y_te == c] for c in classes]
    trains = [x_tr[y_tr == c] for c in classes]
    bandwidths = median_heuristic(jnp.asarray(x_te), jnp.asarray(x_te)) * jnp.asarray(BANDWIDTH_FACTORS)
    n, k = args.num_particles, args.steps
    key = jax.random.PRNGKey(0)
    clf_acc = float((np.asarray(C.classifier_logits(*clf, x_te)).argmax(-1) == y_te).mean())
    print(f"device {jax.devices()[0]}; classifier test accuracy {clf_acc:.4f}; N = {n} per class, {k} steps, "
          f"{args.seeds} seeds", flush=True)

    # reference: the class's training images against its test images
    data_rows = [class_metrics(trains[c], np.zeros(len(trains[c])), c, clf, refs[c], len(trains[c]),
                               jax.random.fold_in(key, 1000 + c), bandwidths) for c in classes]
    data_ref = {m: float(np.mean([r[m] for r in data_rows])) for m in data_rows[0]}

    rows, ess_curves, grid = [], {}, {}
    for w in args.weights:
        for method in ("plain", "fkc"):
            per_seed, times = [], []
            for s in range(args.seeds):
                keys = jax.random.split(jax.random.fold_in(key, s), 10)
                t0 = time.perf_counter()
                xs, lws, ess, res = jax.block_until_ready(run_cfg(
                    keys, params, jnp.asarray(classes), config=config, process=process, w=float(w),
                    weighted=method == "fkc", n=n, k=k, eta=args.eta))
                times.append(time.perf_counter() - t0)
                xs, lws, ess, res = (np.asarray(a) for a in (xs, lws, ess, res))
                if not np.all(np.isfinite(xs)):
                    raise FloatingPointError(f"non-finite samples at w = {w}, {method}")
                mk = jax.random.fold_in(key, 7919 * s + 1)
                cm = [class_metrics(xs[c], lws[c], c, clf, refs[c], min(n, len(trains[c])), jax.random.fold_in(mk, c),
                                    bandwidths) for c in classes]
                per_seed.append({
                    **{m: float(np.mean([r[m] for r in cm])) for m in cm[0]},
                    "per_class": cm,
                    "ess_mean": float(ess.mean() / n), "ess_min": float(ess.min() / n),
                    "resample_steps": float(res.sum(1).mean()),
                })
                if s == 0:
                    ess_curves[(w, method)] = (ess / n).mean(0)
                    # 6 equally weighted draws per class for the grid
                    draws = []
                    for c in classes:
                        wc = np.exp(lws[c] - lws[c].max())
                        wc /= wc.sum()
                        idx = systematic(jax.random.fold_in(key, 99 + c), wc, 6) if method == "fkc" else np.arange(6)
                        draws.append(xs[c][idx])
                    grid[(w, method)] = np.concatenate(draws)
            keys_m = [m for m in per_seed[0] if m != "per_class"]
            row = {"w": w, "method": method, "nfe": 2 * k, "num_particles_per_class": n,
                   "seconds_first_call": round(times[0], 3),
                   "seconds_later_calls": round(float(np.mean(times[1:])), 3) if len(times) > 1 else None}
            for m in keys_m:
                vals = np.array([r[m] for r in per_seed])
                row[m] = float(vals.mean())
                row[m + "_se"] = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None
            row["acc_per_class"] = [float(np.mean([r["per_class"][c]["acc"] for r in per_seed])) for c in classes]
            row["sw2_per_class"] = [float(np.mean([r["per_class"][c]["sw2"] for r in per_seed])) for c in classes]
            rows.append(row)
            print(f"w={w:<4g} {method:5s} acc {row['acc']:.3f} conf {row['conf']:.3f} div {row['div']:.3f} "
                  f"cov {row['cov']:.3f} sw2 {row['sw2']:.4f} mmd {row['mmd']:.4f} ess {row['ess_mean']:.2f}"
                  f"/{row['ess_min']:.3f} resamples {row['resample_steps']:.0f}  "
                  f"{row['seconds_first_call']:.1f}s first, {row['seconds_later_calls']}s later", flush=True)

    # ---- particle-count scaling of FKC at one w (seed 0)
    scaling = []
    for n_s in args.scaling_n:
        keys = jax.random.split(jax.random.fold_in(key, 0), 10)
        t0 = time.perf_counter()
        xs, lws, ess, res = (np.asarray(a) for a in jax.block_until_ready(run_cfg(
            keys, params, jnp.asarray(classes), config=config, process=process, w=float(args.scaling_w),
            weighted=True, n=n_s, k=k, eta=args.eta)))
        sec = time.perf_counter() - t0
        cm = [class_metrics(xs[c], lws[c], c, clf, refs[c], min(n_s, len(trains[c])), jax.random.fold_in(key, 1 + c),
                            bandwidths) for c in classes]
        scaling.append({"w": args.scaling_w, "num_particles_per_class": n_s, "seconds_incl_compile": round(sec, 3),
                        **{m: float(np.mean([r[m] for r in cm])) for m in cm[0]},
                        "ess_mean": float(ess.mean() / n_s), "ess_min": float(ess.min() / n_s),
                        "resample_steps": float(res.sum(1).mean())})
        r = scaling[-1]
        print(f"scaling w={args.scaling_w:g} N={n_s}: acc {r['acc']:.3f} conf {r['conf']:.3f} div {r['div']:.3f} "
              f"cov {r['cov']:.3f} sw2 {r['sw2']:.4f} mmd {r['mmd']:.4f} ess {r['ess_mean']:.2f}/{r['ess_min']:.3f}",
              flush=True)

    # ---- exact-score control: one full-covariance Gaussian per class fitted to the training digits
    gmm_rows = []
    if args.gmm_control:
        from probkit.models import GaussianMixture

        g_means = jnp.asarray(np.stack([t_.mean(0) for t_ in trains]))
        g_covs = jnp.asarray(np.stack([np.cov(t_.T) + 0.02 * np.eye(64) for t_ in trains]), jnp.float32)
        g_w = jnp.asarray([len(t_) for t_ in trains], jnp.float32) / len(x_tr)
        pu = GaussianMixture(g_w, g_means, g_covs)
        t_end = process.t_min
        for w in [w_ for w_ in args.weights if w_ > 1.0]:
            exact = [exact_geometric_samples(jax.random.fold_in(key, 500 + c), pu, c, w, process, t_end, n)
                     for c in classes]
            exact2 = [exact_geometric_samples(jax.random.fold_in(key, 900 + c), pu, c, w, process, t_end, n)
                      for c in classes]
            nu = pu.noised(process, t_end)
            post = jax.jit(jax.vmap(lambda x, c: nu.component_log_probs(x)[c] - nu.log_prob(x), (0, None)))
            for method in ("plain", "fkc"):
                keys = jax.random.split(jax.random.fold_in(key, 77), 10)
                t0 = time.perf_counter()
                xs, lws, ess, logz = (np.asarray(a) for a in jax.block_until_ready(run_gmm_cfg(
                    keys, g_w, g_means, g_covs, process=process, w=float(w), weighted=method == "fkc", n=n, k=k,
                    eta=args.eta)))
                sec = time.perf_counter() - t0
                per = []
                for c in classes:
                    ex, ex_logz, acc_rate = exact[c]
                    wv = np.exp(lws[c] - lws[c].max())
                    wv /= wv.sum()
                    lwj = jnp.asarray(np.log(np.maximum(wv, 1e-300)), jnp.float32)
                    kc = jax.random.fold_in(key, 300 + c)
                    p_c = np.exp(np.asarray(post(jnp.asarray(xs[c]), c), np.float64))
                    p_ex = np.exp(np.asarray(post(jnp.asarray(ex), c), np.float64))
                    per.append({
                        "sw2": float(sliced_wasserstein(jnp.asarray(xs[c]), jnp.asarray(ex), kc, 256, x_log_weights=lwj)),
                        "sw2_exact_vs_exact": float(sliced_wasserstein(jnp.asarray(exact2[c][0]), jnp.asarray(ex), kc, 256)),
                        "mmd": float(mmd(jnp.asarray(xs[c]), jnp.asarray(ex), bandwidths, x_log_weights=lwj)),
                        "post": float(wv @ p_c), "post_exact": float(p_ex.mean()),
                        "log_z_error": float(logz[c] - ex_logz) if method == "fkc" else None,
                        "ess_min": float(ess[c].min() / n), "acceptance": acc_rate,
                        "n_exact": int(len(ex)),
                    })
                row = {"w": w, "method": method, "seconds_incl_compile": round(sec, 3)}
                for m_ in per[0]:
                    vals = [r_[m_] for r_ in per if r_[m_] is not None]
                    row[m_] = float(np.mean(vals)) if vals else None
                row["log_z_abs_error_max"] = (float(max(abs(r_["log_z_error"]) for r_ in per))
                                              if method == "fkc" else None)
                gmm_rows.append(row)
                print(f"gmm control w={w:g} {method:5s}: SW2 to exact q {row['sw2']:.4f} (exact-vs-exact "
                      f"{row['sw2_exact_vs_exact']:.4f}), MMD {row['mmd']:.4f}, E p(c|x) {row['post']:.4f} (exact "
                      f"{row['post_exact']:.4f}), log Z err {row['log_z_error']}, min ESS/N {row['ess_min']:.3f}, "
                      f"rejection acceptance {row['acceptance']:.3f}", flush=True)

    # ---- composition demo: p(x|c1) p(x|c2)
    pairs = np.array([[int(a) for a in s.split("-")] for s in args.pairs.split(",")])
    product_rows, product_draws = [], {}
    for method in ("plain", "fkc"):
        keys = jax.random.split(jax.random.fold_in(key, 31), len(pairs))
        t0 = time.perf_counter()
        xs, lws, ess, res, logz = (np.asarray(a) for a in jax.block_until_ready(run_product(
            keys, params, jnp.asarray(pairs), config=config, process=process, weighted=method == "fkc", n=n, k=k,
            eta=args.eta)))
        sec = time.perf_counter() - t0
        for i, (c1, c2) in enumerate(pairs):
            wv = np.exp(lws[i] - lws[i].max())
            wv /= wv.sum()
            probs = np.asarray(jax.nn.softmax(C.classifier_logits(*clf, jnp.clip(xs[i], -1, 1)), -1), np.float64)
            pred = probs.argmax(1)
            idx = systematic(jax.random.fold_in(key, 5 + i), wv, 8) if method == "fkc" else np.arange(8)
            product_draws[(i, method)] = xs[i][idx]
            product_rows.append({
                "pair": [int(c1), int(c2)], "method": method, "nfe": 2 * k,
                "frac_c1": float(wv @ (pred == c1)), "frac_c2": float(wv @ (pred == c2)),
                "frac_other": float(wv @ ((pred != c1) & (pred != c2))),
                "p_c1_times_p_c2": float(wv @ (probs[:, c1] * probs[:, c2])),
                "ess_final": float(ess[i, -1] / n), "ess_min": float(ess[i].min() / n),
                "resample_steps": int(res[i].sum()),
                "log_evidence": float(logz[i]) if method == "fkc" else None, "seconds": round(sec, 3),
            })
            r = product_rows[-1]
            print(f"product {c1}x{c2} {method:5s} classified {c1}: {r['frac_c1']:.2f} {c2}: {r['frac_c2']:.2f} "
                  f"other {r['frac_other']:.2f}  ess_min {r['ess_min']:.3f}  log Z {r['log_evidence']}", flush=True)

    summary = {
        "platform": platform, "device": str(jax.devices()[0]),
        "config": {"num_particles_per_class": n, "num_steps": k, "seeds": args.seeds, "eta": args.eta,
                   "weights": args.weights, "resampling": "systematic, ESS < N/2", "grid": "uniform",
                   "nfe_per_sample": 2 * k},
        "classifier_test_accuracy": clf_acc,
        "data_reference": data_ref,
        "rows": rows,
        "ess_over_time": {f"w={w:g},{m}": [float(v) for v in c[:: max(1, len(c) // 50)]]
                          for (w, m), c in ess_curves.items()},
        "fkc_particle_scaling": scaling,
        "gmm_exact_score_control": gmm_rows,
        "product": product_rows,
    }
    with open(out_path, "w") as f:
        json.dump(summary, f, indent=1)

    # ---- figures
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = args.weights
    fig, axes = plt.subplots(2, len(ws), figsize=(2.6 * len(ws), 2 * 2.6 + 0.4))
    axes = np.atleast_2d(axes).reshape(2, len(ws))
    for j, w in enumerate(ws):
        for i, method in enumerate(("plain", "fkc")):
            ax = axes[i, j]
            ax.imshow(mosaic(grid[(w, method)], 10, 6), cmap="gray_r", vmin=0, vmax=16, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            r = next(r for r in rows if r["w"] == w and r["method"] == method)
            ax.set_title(f"{'plain CFG' if method == 'plain' else 'FKC-CFG'}, w = {w:g}\nacc {r['acc']:.2f}, "
                         f"div {r['div']:.2f}", fontsize=8)
    fig.suptitle("rows: classes 0-9; FKC columns are draws after resampling by the weights", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "guidance_grid.png"), dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    for w in ws:
        c = ess_curves[(w, "fkc")]
        t = np.linspace(1, 0, len(c) + 1)[1:]
        ax.plot(t, c, label=f"w = {w:g}")
    ax.set_xlim(1, 0)
    ax.set_xlabel("t (generation runs from 1 to 0)")
    ax.set_ylabel("ESS / N (mean over classes)")
    ax.set_title("FKC-CFG: ESS after each reweighting", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "guidance_ess.png"), dpi=130)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(6, 0.45 * len(pairs) + 0.7))
    for j, method in enumerate(("plain", "fkc")):
        x = np.concatenate([product_draws[(i, method)] for i in range(len(pairs))])
        axes[j].imshow(mosaic(x, len(pairs), 8), cmap="gray_r", vmin=0, vmax=16, interpolation="nearest")
        axes[j].set_xticks([])
        axes[j].set_yticks(4.5 + 9 * np.arange(len(pairs)))
        axes[j].set_yticklabels([f"{a}x{b}" for a, b in pairs])
        axes[j].set_title("summed scores (no weights)" if method == "plain" else "FKC product", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "guidance_product.png"), dpi=130)
    plt.close(fig)

    # ---- table
    print(f"\nFKC-CFG vs plain CFG, {n} particles per class, {k} steps ({2 * k} NFE), {args.seeds} seeds, "
          f"{summary['device']}")
    hdr = f"{'w':>4s} {'method':6s} {'acc':>6s} {'conf':>6s} {'div':>6s} {'cov':>6s} {'SW2':>7s} {'MMD':>7s} {'ESS/N':>6s} {'min':>6s} {'#res':>5s}"
    print(hdr)
    print(f"{'data':>11s} {data_ref['acc']:6.3f} {data_ref['conf']:6.3f} {data_ref['div']:6.3f} {data_ref['cov']:6.3f} "
          f"{data_ref['sw2']:7.4f} {data_ref['mmd']:7.4f}")
    for r in rows:
        print(f"{r['w']:4g} {r['method']:6s} {r['acc']:6.3f} {r['conf']:6.3f} {r['div']:6.3f} {r['cov']:6.3f} "
              f"{r['sw2']:7.4f} {r['mmd']:7.4f} {r['ess_mean']:6.3f} {r['ess_min']:6.3f} {r['resample_steps']:5.0f}")
    return summary


if __name__ == "__main__":
    main()
