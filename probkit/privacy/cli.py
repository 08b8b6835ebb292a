"""``probkit privacy estimate``: posterior of eps and the Clopper-Pearson bound from audit counts."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the ``privacy`` command (sub-command ``estimate``) to the probkit CLI."""
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
    est.add_argument("--delta", type=float, required=True, help="delta of the (eps, delta) claim")
    est.add_argument("--level", type=float, default=0.95, help="credible / confidence level (default 0.95)")
    est.add_argument("--prior", default="jeffreys", help="'jeffreys', 'uniform' or 'a,b' (a Beta prior)")
    est.add_argument("--claimed-eps", type=float, default=None, help="also print P(eps > claimed value)")
    est.add_argument("--plot", default=None, metavar="PNG", help="save a plot of the eps posterior")
    est.add_argument("--json", action="store_true", help="print the summary as JSON")
    est.set_defaults(func=_estimate)
    privacy.set_defaults(func=lambda args: (privacy.print_help(), 0)[1])


def _parse_prior(text: str):
    if text in ("jeffreys", "uniform"):
        return text
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"prior must be 'jeffreys', 'uniform' or 'a,b'; got {text!r}") from None
    return (a, b)


def _estimate(args: argparse.Namespace) -> int:
    from probkit.privacy.bayes import epsilon_posterior
    from probkit.privacy.frequentist import clopper_pearson_epsilon

    post = epsilon_posterior(args.fp, args.negatives, args.fn, args.positives, args.delta, prior=_parse_prior(args.prior))
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
        _plot(post, args, summary)
        print(f"plot saved to {args.plot}")
    return 0


def _plot(post, args, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lo, hi = post.quantile([0.0005, 0.9995])
    pad = 0.1 * max(hi - lo, 1e-3)
    edges = np.linspace(max(lo - pad, 0.0), hi + pad, 201)
    dens = np.diff(post.cdf(edges)) / np.diff(edges)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(0.5 * (edges[1:] + edges[:-1]), dens, color="C0", label="posterior density")
    ax.axvspan(*summary["interval"], color="C0", alpha=0.2, label=f"{100 * args.level:g}% credible interval")
    ax.axvline(summary["clopper_pearson_lower_bound"], color="C3", ls="--", label="Clopper-Pearson lower bound")
    ax.set_xlabel("eps")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)
