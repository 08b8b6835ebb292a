"""Train the class-conditional digits score model and the digit classifier shipped with probkit.

    python benchmarks/train_guidance.py                 # full recipe; writes probkit/models/pretrained/
                                                        # digits_cond_vp.{npz,json}, digits_classifier.{npz,json}
    python benchmarks/train_guidance.py --quick         # CPU smoke run (small; does not overwrite the shipped files)
    python benchmarks/train_guidance.py --out-dir DIR   # write the two models into DIR instead

Both are trained on the train split of ``probkit.models.conditional.load_digits_split`` (1347
images; the 450 test images are held out for evaluation):

* the score model: one noise-prediction MLP with a class embedding and a null label, trained by
  denoising score matching with condition dropout (probability ``--p-uncond``) under ``VP()``;
* the classifier: an MLP trained by cross-entropy with input-noise augmentation.

Reports the DSM loss on the test split (conditional and unconditional, common random numbers)
and the classifier's test accuracy (``benchmarks/guidance.py`` reports the classifier accuracy
of conditional samples: its w = 1 rows). Writes
``benchmarks/results/train_guidance_<platform>.json`` (or ``--json``).
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

from probkit.diffusion import VP  # noqa: E402
from probkit.models import conditional as C  # noqa: E402
from probkit.models.nets import count_params, stratified_times  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--p-uncond", type=float, default=0.15)
    p.add_argument("--clf-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=None, help="folder for the two models (default: the shipped package data)")
    p.add_argument("--json", default=None)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    args = p.parse_args(argv)

    steps = args.steps or (300 if args.quick else 20_000)
    clf_steps = args.clf_steps or (500 if args.quick else 4000)
    if args.quick:
        args.hidden, args.depth = 64, 2
    platform = jax.default_backend()
    out_dir = args.out_dir or (None if args.quick else os.path.join(ROOT, "probkit", "models", "pretrained"))
    process = VP()
    x_tr, y_tr, x_te, y_te = C.load_digits_split()
    key = jax.random.PRNGKey(args.seed)
    k_score, k_clf, k_eval = jax.random.split(key, 3)

    # ---- score model
    t0 = time.time()

    def callback(done, losses):
        print(f"  step {done:6d}  loss {float(np.mean(losses)):.4f}  {time.time() - t0:6.1f}s", flush=True)

    res = C.train_conditional_score_model(
        k_score, x_tr, y_tr, process, steps, args.batch_size, num_classes=10, p_uncond=args.p_uncond,
        hidden=args.hidden, depth=args.depth, learning_rate=args.lr, chunk_size=100 if args.quick else 1000,
        callback=callback,
    )
    jax.block_until_ready(res.params)
    train_s = time.time() - t0

    def test_loss(labels):
        losses = []
        for k in jax.random.split(k_eval, 8):  # same keys for both: common random numbers
            k_t, k_eps = jax.random.split(k)
            t = stratified_times(k_t, x_te.shape[0], process.t_min)
            eps = jax.random.normal(k_eps, x_te.shape)
            xt = process.alpha(t)[:, None] * x_te + process.sigma(t)[:, None] * eps
            pred = jax.vmap(lambda x, s, y: C.conditional_apply(res.params, res.config, x, s, y, process))(xt, t, labels)
            losses.append(float(jnp.mean((pred - eps) ** 2)))
        return float(np.mean(losses))

    loss_cond = test_loss(jnp.asarray(y_te))
    loss_uncond = test_loss(jnp.full(y_te.shape, 10))

    # ---- classifier
    t1 = time.time()
    clf_params, clf_cfg, clf_losses = C.train_classifier(k_clf, x_tr, y_tr, 10, clf_steps)
    jax.block_until_ready(clf_params)
    clf_s = time.time() - t1
    pred_te = np.asarray(C.classifier_logits(clf_params, clf_cfg, x_te)).argmax(-1)
    clf_acc = float((pred_te == y_te).mean())

    summary = {
        "platform": platform,
        "device": str(jax.devices()[0]),
        "split": {"train": int(len(y_tr)), "test": int(len(y_te))},
        "score_model": {
            "steps": steps, "batch_size": args.batch_size, "hidden": args.hidden, "depth": args.depth,
            "learning_rate": args.lr, "p_uncond": args.p_uncond, "num_params": count_params(res.params),
            "train_seconds": round(train_s, 1),
            "loss_last_1000": float(np.mean(np.asarray(res.losses)[-1000:])),
            "dsm_loss_test_cond": loss_cond, "dsm_loss_test_uncond": loss_uncond,
        },
        "classifier": {
            "steps": clf_steps, "hidden": clf_cfg.hidden, "depth": clf_cfg.depth, "num_params": count_params(clf_params),
            "train_seconds": round(clf_s, 1), "test_accuracy": clf_acc,
        },
    }
    if out_dir is not None:
        common = {"data": "sklearn.datasets.load_digits, pixels/16 -> [-1, 1], train split of "
                          "probkit.models.conditional.load_digits_split() (1347 of 1797 images)",
                  "trained_with": "benchmarks/train_guidance.py", "seed": args.seed, "storage_dtype": args.dtype}
        sm = summary["score_model"]
        meta = {**common, **{k: sm[k] for k in ("steps", "batch_size", "learning_rate", "p_uncond", "num_params",
                                                   "dsm_loss_test_cond", "dsm_loss_test_uncond")}, "null_label": 10}
        files = list(C.save_conditional_score_model(os.path.join(out_dir, "digits_cond_vp"), res.params, res.config,
                                                    process, dtype=args.dtype, metadata=meta))
        cm = {**common, **summary["classifier"]}
        files += C.save_classifier(os.path.join(out_dir, "digits_classifier"), clf_params, clf_cfg, dtype=args.dtype,
                                   metadata=cm)
        summary["saved"] = files
        summary["bytes"] = {os.path.basename(f): os.path.getsize(f) for f in files}

    path = args.json or os.path.join(ROOT, "benchmarks", "results",
                                     f"train_guidance{'_quick' if args.quick else ''}_{platform}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
