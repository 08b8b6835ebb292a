"""``probkit privacy``: ``estimate`` (posterior of eps from audit counts) and ``report`` (a full
audit from a scores file and a labels file: figure and JSON).

Bad values raise ``ValueError`` naming the option; ``probkit.cli.main`` prints them as
``probkit: error: <one line>`` with exit status 2, and a file that cannot be written (OSError)
with status 1; never a traceback (``--debug`` shows it).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from probkit.cli import make_parent_folder


def register(subparsers) -> None:
    """Add the ``privacy`` command (sub-commands ``estimate`` and ``report``) to the probkit CLI."""
    privacy = subparsers.add_parser("privacy", help="Bayesian estimation of differential privacy from audits")
    sub = privacy.add_subparsers(dest="privacy_command", metavar="SUBCOMMAND")
    est = sub.add_parser(
        "estimate",
        help="posterior of eps from membership-test counts (Zanella-Béguelin et al. 2023)",
        description="Posterior of eps given fp false positives among --negatives non-member trials and "
        "fn false negatives among --positives member trials; prints its summary and the "
        "Clopper-Pearson lower bound.",
    )
    est.add_argument("--fp", type=int, required=True, help="false positives")
    est.add_argument("--negatives", type=int, required=True, help="non-member trials (n_negative)")
    est.add_argument("--fn", type=int, required=True, help="false negatives")
    est.add_argument("--positives", type=int, required=True, help="member trials (n_positive)")
    est.add_argument("--delta", type=float, required=True, help="delta of the (eps, delta) claim (0: pure DP)")
    est.add_argument("--level", type=float, default=0.95, help="credible / confidence level (default 0.95)")
    est.add_argument("--prior", default="jeffreys", help="'jeffreys', 'uniform' or 'a,b' (a Beta prior)")
    est.add_argument("--claimed-eps", type=float, default=None, help="also print P(eps > claimed value)")
    est.add_argument("--plot", default=None, metavar="PNG", help="save a plot of the eps posterior")
    est.add_argument("--json", action="store_true", help="print the summary as JSON")
    est.set_defaults(func=_estimate)

    rep = sub.add_parser(
        "report",
        help="audit report from raw attack scores and membership labels",
        description="Audit from one attack score per trial (--scores) and its label (--labels: 1 member, "
        "0 non-member), each a CSV/text file of one column or a .npy array. The threshold is chosen on a "
        "calibration split and eps is estimated on the held-out rest. Writes OUT.png (and OUT.pdf with "
        "--pdf): ROC against the claimed region, eps posterior against Clopper-Pearson, the privacy curve "
        "with credible bands; and OUT.json with the numbers and the verdict P(eps > claim).",
    )
    rep.add_argument("--scores", required=True, help="scores file (.csv/.txt one column, or .npy)")
    rep.add_argument("--labels", required=True, help="labels file, 0/1 (.csv/.txt one column, or .npy)")
    rep.add_argument("--deltas", default="1e-5,1e-4,1e-3,1e-2,0.05,0.1",
                     help="comma-separated deltas of the privacy curve (default 1e-5,1e-4,1e-3,1e-2,0.05,0.1)")
    rep.add_argument("--claim", default=None, metavar="EPS,DELTA", help="claimed (eps, delta) to test, e.g. 2,1e-5")
    rep.add_argument("--level", type=float, default=0.95, help="credible / confidence level (default 0.95)")
    rep.add_argument("--split", type=float, default=0.5, help="fraction of each class used to choose thresholds "
                     "(default 0.5); 0 uses all data for both (Bonferroni-corrected bound, optimistic posterior)")
    rep.add_argument("--thresholds", type=int, default=100, help="candidate thresholds (default 100)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the random split")
    rep.add_argument("--out", default="privacy_report", metavar="PREFIX",
                     help="output prefix: writes PREFIX.png and PREFIX.json (default privacy_report)")
    rep.add_argument("--pdf", action="store_true", help="also write PREFIX.pdf")
    rep.set_defaults(func=_report)
    privacy.set_defaults(func=lambda args: (privacy.print_help(), 0)[1])


def _estimate(args: argparse.Namespace) -> int:
    from probkit.privacy.bayes import epsilon_posterior
    from probkit.privacy.frequentist import clopper_pearson_epsilon

    prior = args.prior  # 'jeffreys', 'uniform' or a pair 'a,b' (checked by epsilon_posterior)
    if prior not in ("jeffreys", "uniform"):
        prior = tuple(_parse_floats(prior, "--prior ('jeffreys', 'uniform' or a,b)"))
    post = epsilon_posterior(args.fp, args.negatives, args.fn, args.positives, args.delta, prior=prior)
    summary = post.summary(args.level)
    cp = clopper_pearson_epsilon(args.fp, args.negatives, args.fn, args.positives, args.delta, args.level)
    summary["clopper_pearson_lower_bound"] = cp
    if args.claimed_eps is not None:
        summary["prob_exceeds_claimed"] = float(post.prob_exceeds(args.claimed_eps))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        lo, hi = summary["interval"]
        hlo, hhi = summary["hpd_interval"]
        pct = f"{100 * args.level:g}%"
        print(f"counts: fp={args.fp}/{args.negatives}, fn={args.fn}/{args.positives}, delta={args.delta:g}, prior={args.prior}")
        print(f"posterior of eps: mean {summary['mean']:.4f}, median {summary['median']:.4f}, mode {summary['mode']:.4f}")
        print(f"  {pct} equal-tailed credible interval: [{lo:.4f}, {hi:.4f}]")
        print(f"  {pct} HPD credible interval:          [{hlo:.4f}, {hhi:.4f}]")
        if args.claimed_eps is not None:
            print(f"  P(eps > {args.claimed_eps:g}) = {summary['prob_exceeds_claimed']:.4g}")
        print(f"Clopper-Pearson {pct} lower bound on eps: {cp:.4f}")
    if args.plot:
        fig, ax = _pyplot().subplots(figsize=(6, 3.5))
        _posterior_panel(ax, post, summary["interval"], cp, args.level)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        _pyplot().close(fig)
        print(f"plot saved to {args.plot}")
    return 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _posterior_panel(ax, post, interval, cp_lower, level, claim=None) -> None:
    lo, hi = post.quantile([0.0005, 0.9995])
    pad = 0.1 * max(hi - lo, 1e-3)
    e = np.linspace(max(lo - pad, 1e-9), hi + pad, 300)
    ax.plot(e, post.pdf(e), color="C0", label="posterior density")
    ax.axvspan(*interval, color="C0", alpha=0.2, label=f"{100 * level:g}% credible interval")
    if np.isfinite(cp_lower):
        ax.axvline(cp_lower, color="C3", ls="--", label="Clopper-Pearson lower bound")
    if claim is not None:
        ax.axvline(claim, color="k", ls=":", label=f"claimed eps = {claim:g}")
    ax.set_xlabel("eps")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)


# ----------------------------------------------------------------------------- report
def load_vector(path: str, name: str):
    """A 1-D array from a ``.npy`` file (no pickle) or a one-column CSV/text file (an optional
    header line is skipped). Errors name the option and the path."""
    if not os.path.isfile(path):
        raise ValueError(f"--{name} {path}: no such file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"--{name} {path}: not a readable .npy array without pickle ({err})") from None
    else:
        arr = None
        for skip in (0, 1):
            try:
                arr = np.loadtxt(path, delimiter=",", ndmin=1, skiprows=skip, dtype=np.float64)
                break
            except ValueError:
                continue
        if arr is None:
            raise ValueError(f"--{name} {path}: not a CSV/text file of numbers (one column)")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"--{name} {path}: expected one column of values; got shape {arr.shape}")
    return arr


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers; got {text!r}") from None


def _report(args: argparse.Namespace) -> int:
    import jax

    from probkit.privacy.scores import audit_from_scores

    scores = load_vector(args.scores, "scores")
    labels = load_vector(args.labels, "labels")
    deltas = _parse_floats(args.deltas, "--deltas")
    claim = None
    if args.claim is not None:
        claim = _parse_floats(args.claim, "--claim")
        if len(claim) != 2 or claim[0] < 0:
            raise ValueError(f"--claim must be EPS,DELTA with EPS >= 0; got {args.claim!r}")
        if not any(np.isclose(claim[1], d, rtol=1e-9, atol=0) for d in deltas):
            deltas.append(claim[1])
    deltas = sorted(deltas)
    if not 0.0 <= args.split < 1.0:
        raise ValueError(f"--split must lie in [0, 1); got {args.split!r}")
    prefix = make_parent_folder(args.out, "--out")
    audit = audit_from_scores(
        scores, labels, deltas=deltas, level=args.level, split=None if args.split == 0 else args.split,
        thresholds=args.thresholds, key=jax.random.PRNGKey(args.seed),
    )
    summary = {"scores": args.scores, "labels": args.labels, "n": int(scores.size), **audit.to_dict()}
    if claim is not None:
        summary["verdict"] = audit.verdict(claim[0], claim[1])
    files = [prefix + ".json", prefix + ".png"] + ([prefix + ".pdf"] if args.pdf else [])
    with open(files[0], "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    _report_figure(audit, scores, labels, claim, files[1:], args.level)

    # terminal summary
    print(f"audit of {scores.size} scores: {audit.n_heldout[0]} non-members / {audit.n_heldout[1]} members held out"
          + ("" if audit.honest else " (no split: the posterior is optimistic)"))
    print(f"{'delta':>10} {'eps median':>10} {f'{100 * audit.band_level:g}% band':>20} {'CP lower':>9}")
    for j, d in enumerate(audit.deltas):
        band = f"[{audit.eps_lower[j]:.3f}, {audit.eps_upper[j]:.3f}]"
        print(f"{d:>10.3g} {audit.eps_median[j]:>10.3f} {band:>20} {audit.cp_lower[j]:>9.3f}")
    if claim is not None:
        v = summary["verdict"]
        print(f"claim (eps = {claim[0]:g}, delta = {claim[1]:g}): P(eps > {claim[0]:g}) = {v['prob_eps_exceeds_claim']:.4g}"
              f"{'; refuted by Clopper-Pearson' if v['refuted_by_clopper_pearson'] else ''}")
    print("wrote " + ", ".join(files))
    return 0


def _report_figure(audit, scores, labels, claim, paths, level) -> None:
    from probkit.privacy.regions import eps_delta_tradeoff

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    # ROC (held-out) against the claimed region: an (eps, delta)-DP mechanism keeps every attack's
    # TPR <= 1 - f(FPR), f the claim's trade-off curve.
    ax = axes[0, 0]
    fpr, tpr = audit.roc
    order = np.argsort(fpr)
    ax.plot(fpr[order], tpr[order], "C0.-", ms=3, lw=1, label="held-out ROC")
    ax.plot(1 - tpr[order], 1 - fpr[order], "C0:", lw=1, label="flipped attack")
    x = np.logspace(-6, 0, 400)
    ax.plot(x, x, color="grey", lw=0.8, ls="--", label="random guess")
    if claim is not None:
        bound = 1.0 - np.asarray(eps_delta_tradeoff(x, claim[0], claim[1]))
        ax.plot(x, bound, "k", lw=1.2, label=f"claimed ({claim[0]:g}, {claim[1]:g}) boundary")
        ax.fill_between(x, bound, 1.0, color="C3", alpha=0.12, label="outside the claim")
    ax.set(xscale="log", xlim=(max(1.0 / (2 * audit.n_heldout[0]), 1e-6), 1), ylim=(0, 1.01), xlabel="FPR",
           ylabel="TPR", title="ROC against the claimed region")
    ax.legend(fontsize=7, loc="lower right")
    # eps posterior vs Clopper-Pearson at the claim's delta (or the smallest audited delta)
    ax = axes[0, 1]
    d0 = claim[1] if claim is not None else float(audit.deltas[0])
    j = audit.delta_index(d0)
    _posterior_panel(ax, audit.posteriors[j], (audit.eps_lower[j], audit.eps_upper[j]), audit.cp_lower[j], audit.band_level,
                     claim[0] if claim is not None else None)
    title = f"posterior of eps at delta = {d0:g}"
    if claim is not None:
        title += f"\nP(eps > {claim[0]:g}) = {audit.prob_exceeds(claim[0], d0):.3g}"
    ax.set_title(title, fontsize=9)
    # privacy curve
    ax = axes[1, 0]
    d = audit.deltas
    xd = np.where(d > 0, d, np.min(d[d > 0]) / 10 if np.any(d > 0) else 1e-6)
    ax.fill_between(xd, audit.eps_lower, audit.eps_upper, color="C0", alpha=0.25,
                    label=f"{100 * audit.band_level:g}% credible band (held-out)")
    ax.plot(xd, audit.eps_median, "C0o-", ms=3, label="posterior median")
    ax.plot(xd, np.where(np.isfinite(audit.cp_lower), audit.cp_lower, np.nan), "C3s--", ms=3,
            label=f"Clopper-Pearson {100 * level:g}% lower bound")
    if audit.gdp is not None:
        ax.fill_between(xd, audit.gdp["eps_lower"], audit.gdp["eps_upper"], color="C2", alpha=0.15,
                        label=f"mu-GDP band (probit slope {audit.gdp['probit_slope']:.2f})")
    if claim is not None:
        ax.plot([claim[1] if claim[1] > 0 else xd[0]], [claim[0]], "k*", ms=10, label="claim")
    ax.set(xscale="log", xlabel="delta", ylabel="eps", title="privacy curve eps(delta)")
    ax.legend(fontsize=7)
    # score distributions
    ax = axes[1, 1]
    lab = np.asarray(labels).astype(bool)
    bins = np.histogram_bin_edges(scores, bins=60)
    ax.hist(scores[~lab], bins=bins, alpha=0.5, density=True, label="non-members")
    ax.hist(scores[lab], bins=bins, alpha=0.5, density=True, label="members")
    ax.set(xlabel="attack score", ylabel="density", title="scores")
    ax.legend(fontsize=7)
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=110)
    plt.close(fig)
