"""Study: what lowers the seed-to-seed variance of MODE MASSES in Feynman-Kac correctors.

Problems (VP process, exact Gaussian-mixture scores, targets taken at t_min):

* ``product``: the authors' experts (Skreta et al. 2025, arXiv 2503.02819, product notebook):
  equal mixtures of N((±1.5, +1.5), 0.16 I) and of N((±1.5, -1.5), 0.16 I). Their product has two
  modes at (±1.5, 0) of mass 1/2 each and within-mode std 0.283 (the plain composed-score SDE
  gives 0.233). Reported: sd over seeds of the mass of the right mode, TV of the mode masses,
  the within-mode std, and log Z-hat - log Z (closed form).
* ``anneal2`` / ``anneal3``: p^β, β = 2, 3, of a 2-D mixture of 40 well-separated modes (means
  uniform in [-5, 5]^2 at least 1.2 apart, std 0.25, weights Uniform(0.5, 1.5) normalised; fixed
  numpy seed), exact mode masses ∝ w_k^β (2π s_k^2)^{1-β} / β. Reported: mode-occupancy TV and
  the sd of the largest mode's mass.

Every number is over ``--seeds`` independent runs, vmapped (one compile per configuration).
Floors: the binomial sd sqrt(m(1 - m)/N) and the expected TV of N exact draws (multinomial).
Cost: composed-score evaluations per particle (one evaluation of all experts = 1), so levers are
compared at EQUAL cost: a corrector's evaluations are paid for with fewer steps.

Levers (see probkit.fkc.variance and docs/fkc.md): resampling scheme and ESS threshold,
Hilbert-ordered resampling (Gerber, Chopin & Whiteley 2019), late start of the weights, tempered
weights, trapezoid weight increments, the noise level eta, MALA / unadjusted Langevin correctors,
island SMC (independent runs pooled by their evidence) and the mode-mass estimator (weighted
hard counts, Rao-Blackwellised responsibilities, or counts after a final resampling).

Usage::

    python benchmarks/fkc_variance.py --quick     # CPU: N = 2^10, K = 100, 20 seeds (a few minutes)
    python benchmarks/fkc_variance.py             # GPU: levers at N = 2^14, K = 200; N = 2^12..2^18, K = 100..1000

Writes ``benchmarks/results/fkc_variance_{cpu,gpu}.json`` and prints tables; ``--plot`` writes
``docs/img/fkc_variance.png`` from a JSON file.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probkit.diffusion import VP, time_grid
from probkit.fkc import fkc_model
from probkit.fkc.variance import fkc_variance_model, late_start, mode_masses, tempered
from probkit.smc.resampling import ordered
from probkit.models import GaussianMixture
from probkit.smc import hmc, langevin, mala, run_smc
from probkit.smc.islands import pool_islands

PROC = VP()
TMIN = PROC.t_min


# ----------------------------------------------------------------------------------------------
# problems
def product_problem():
    a = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.5, 1.5], [1.5, 1.5]]), jnp.full((2, 2), 0.16))
    b = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.5, -1.5], [1.5, -1.5]]), jnp.full((2, 2), 0.16))
    na, nb = a.noised(PROC, TMIN), b.noised(PROC, TMIN)
    exact = na.product(nb)
    w = np.asarray(exact.weights, np.float64)
    keep = np.argsort(-w)[:2]  # the two modes at (±1.5, 0); the cross terms have mass ~1e-11
    keep = keep[np.argsort(np.asarray(exact.means)[keep, 0])]  # left, right
    modes = GaussianMixture(jnp.asarray(w[keep] / w[keep].sum()), exact.means[keep], exact.covs[keep], validate=False)
    std = float(np.sqrt(np.mean(np.diag(np.asarray(modes.full_covs()[1])))))
    return dict(
        name="product", score_fns=(a.score_fn(PROC), b.score_fn(PROC)), logdensity_fns=(a.logdensity_fn(PROC), b.logdensity_fn(PROC)),
        exponents=(1.0, 1.0), masses=np.asarray(modes.weights, np.float64), log_resp=modes.component_log_probs,
        log_z=float(na.log_normalizer_product(nb)), exact_std=std, local_var=lambda t: PROC.alpha(t) ** 2 * 0.08 + PROC.sigma(t) ** 2 / 2,
        tracked=1,
    )


STD40 = 0.25


def forty_modes(seed: int = 0):
    rng = np.random.default_rng(seed)
    means = []
    while len(means) < 40:
        m = rng.uniform(-5, 5, 2)
        if all(np.linalg.norm(m - q) >= 1.2 for q in means):
            means.append(m)
    w = rng.uniform(0.5, 1.5, 40)
    return GaussianMixture(jnp.asarray(w / w.sum()), jnp.asarray(np.array(means)), jnp.full((40, 2), STD40**2))


def anneal_problem(beta: float):
    p = forty_modes()
    pt = p.noised(PROC, TMIN)
    w = np.asarray(pt.weights, np.float64)
    s2 = np.asarray(pt.covs, np.float64)[:, 0]
    log_m = beta * np.log(w) + (1 - beta) * np.log(2 * np.pi * s2) - np.log(beta)
    log_z = float(np.logaddexp.reduce(log_m))
    masses = np.exp(log_m - log_z)
    return dict(
        name=f"anneal{beta:g}", score_fns=(p.score_fn(PROC),), logdensity_fns=(p.logdensity_fn(PROC),), exponents=(float(beta),),
        masses=masses, log_resp=pt.component_log_probs, log_z=log_z, exact_std=float(np.sqrt(s2[0] / beta)),
        local_var=lambda t: (PROC.alpha(t) ** 2 * STD40**2 + PROC.sigma(t) ** 2) / beta, tracked=int(np.argmax(masses)),
    )


def floors(masses: np.ndarray, n: int, rng: np.random.Generator, reps: int = 400) -> dict:
    counts = rng.multinomial(n, masses, size=reps) / n
    tv = 0.5 * np.abs(counts - masses).sum(1)
    return {"tv_floor": float(tv.mean()), "sd_floor": math.sqrt(masses.max() * (1 - masses.max()) / n)}


# ----------------------------------------------------------------------------------------------
# levers
def ETA_DEFAULT(t):
    """The recipes' default noise multiple: eta(t) = (2 - t) g(t) (eta callables are multiples of g)."""
    return 2.0 - t


BASE = dict(kind="plain", eta=1.0, resampling="systematic", ess=0.5, rule="euler", schedule=None,
            corrector=None, corr_steps=1, corr_c=0.5, islands=1, weighted=True)


def lever_table(k: int) -> list[tuple[str, dict, int]]:
    """(name, settings, steps) at equal cost ~ k composed-score evaluations per particle."""
    L = []

    def add(name, steps=k, **kw):
        L.append((name, {**BASE, **kw}, steps))

    add("FKC plain (systematic, ESS 0.5)")
    add("unweighted SDE", weighted=False)
    add("resample every step", ess=1.0)
    add("Hilbert-systematic, every step", resampling="hilbert-systematic", ess=1.0)
    add("eta 1.5", eta=1.5)
    add("eta 2", eta=2.0)
    add("MALA x1 (K/3 steps)", steps=max(k // 3, 2), corrector="mala", corr_steps=1)
    H = dict(resampling="hilbert-systematic", ess=1.0)
    add("Hilbert every step + eta 1.5", eta=1.5, **H)
    add("Hilbert every step + eta 2", eta=2.0, **H)
    add("DEFAULT: Hilbert every step + eta (2-t)g", eta=ETA_DEFAULT, **H)
    add("eta (2-t)g", eta=ETA_DEFAULT)
    add("Hilbert every step + MALA x1 (K/3)", steps=max(k // 3, 2), corrector="mala", **H)
    add("Hilbert every step + eta 2 + MALA x1 (K/3)", steps=max(k // 3, 2), corrector="mala", eta=2.0, **H)
    # at twice the cost of plain FKC
    add("2x: plain, 2K", steps=2 * k)
    add("2x: Hilbert every step + eta 2, 2K", steps=2 * k, eta=2.0, **H)
    add("2x: Hilbert every step + eta 2 + MALA x1 (2K/3)", steps=max(2 * k // 3, 2), corrector="mala", eta=2.0, **H)
    add("2x: Hilbert every step + MALA x1 (2K/3)", steps=max(2 * k // 3, 2), corrector="mala", **H)
    add("trapezoid", kind="v", rule="trapezoid")
    add("Hilbert every step + eta 2 + trapezoid", kind="v", rule="trapezoid", eta=2.0, **H)
    add("late start t<0.5", kind="v", schedule=("late", 0.5))
    add("late start t<0.2", kind="v", schedule=("late", 0.2))
    add("tempered weights 0.3", kind="v", schedule=("temper", 0.3))
    add("4 islands", islands=4)
    add("16 islands", islands=16)
    add("eta 0.5", eta=0.5)
    add("eta 0, no resampling", eta=0.0, ess=0.0)
    add("HMC 3 leapfrog x1 (K/5 steps)", steps=max(k // 5, 2), corrector="hmc", corr_steps=1)
    add("MALA x3 (K/5 steps)", steps=max(k // 5, 2), corrector="mala", corr_steps=3)
    add("Langevin x1 (K/2 steps)", steps=max(k // 2, 2), corrector="langevin", corr_steps=1, corr_c=0.05)
    add("multinomial", resampling="multinomial")
    add("stratified", resampling="stratified")
    add("residual", resampling="residual")
    add("Hilbert-systematic, ESS 0.5", resampling="hilbert-systematic")
    add("ESS 0.2", ess=0.2)
    add("ESS 0.8", ess=0.8)
    return L


def _resampling(name):
    if name.startswith("hilbert-"):
        return ordered(name.split("-", 1)[1])
    return name


def build_sampler(prob: dict, cfg: dict, n: int, k: int):
    """A function key -> dict of per-run statistics (arrays), to be vmapped over seeds."""
    ts = time_grid(PROC, k)
    d = 2
    n_isl = cfg["islands"]
    n_per = n // n_isl
    lv = prob["local_var"]
    if cfg["kind"] == "plain":
        model, target = fkc_model(PROC, prob["score_fns"], prob["exponents"], (d,), eta=cfg["eta"], weighted=cfg["weighted"],
                          logdensity_fns=prob["logdensity_fns"] if cfg["corrector"] in ("mala", "hmc") else None)
    else:
        sched = None
        if cfg["schedule"] is not None:
            sched = late_start(cfg["schedule"][1]) if cfg["schedule"][0] == "late" else tempered(cfg["schedule"][1])
        model, target = fkc_variance_model(PROC, prob["score_fns"], prob["exponents"], (d,), t_end=TMIN, eta=cfg["eta"], rule=cfg["rule"],
                                   weight_schedule=sched)
    corrector = None
    if cfg["corrector"] == "hmc":
        corrector = hmc(lambda t: 0.5 * jnp.sqrt(lv(t)), 3, cfg["corr_steps"])
    elif cfg["corrector"] == "mala":
        corrector = mala(lambda t: cfg["corr_c"] * lv(t), cfg["corr_steps"])
    elif cfg["corrector"] == "langevin":
        corrector = langevin(lambda t: cfg["corr_c"] * lv(t), cfg["corr_steps"])

    def one(key):
        def island(kk):
            out = run_smc(kk, model, n_per, ts, target=target, resampling=_resampling(cfg["resampling"]),
                          ess_threshold=cfg["ess"], corrector=corrector, check=False)
            return out.particles, out.log_weights, out.log_evidence, jnp.mean(out.ess) / n_per, jnp.sum(out.resampled)

        if n_isl == 1:
            x, lw, lz, ess, nres = island(key)
        else:
            xs, lws, lzs, esss, nress = jax.vmap(island)(jax.random.split(key, n_isl))
            lw, lz = pool_islands(lws, lzs)
            x = xs.reshape(-1, d)
            ess, nres = jnp.mean(esss), jnp.mean(nress)
        hard = mode_masses(x, lw, prob["log_resp"])
        soft = mode_masses(x, lw, prob["log_resp"], soft=True)
        # multinomial resampling by inverse CDF (categorical(shape=(n,)) would build an (n, N) array)
        cdf = jnp.cumsum(jnp.exp(lw - jax.nn.logsumexp(lw)))
        u = jax.random.uniform(jax.random.fold_in(key, 7), (n,), cdf.dtype) * cdf[-1]
        idx = jnp.clip(jnp.searchsorted(cdf, u), 0, n - 1)
        res = mode_masses(x[idx], jnp.zeros((n,), lw.dtype), prob["log_resp"])
        # weighted within-mode std (mode `tracked`)
        lab = jnp.argmax(jax.vmap(prob["log_resp"])(x), axis=-1)
        wm = jnp.exp(lw - jax.nn.logsumexp(lw)) * (lab == prob["tracked"])
        wm = wm / jnp.sum(wm)
        mu = wm @ x
        std = jnp.sqrt(jnp.mean(wm @ (x - mu) ** 2))
        return dict(hard=hard, soft=soft, resampled=res, std=std, log_z=lz, ess=ess, nres=nres)

    cost = k * (1 + (0 if corrector is None else corrector.nfe))
    return one, cost


def summarise(prob, stats, n) -> dict:
    m = prob["masses"]
    j = int(np.argmax(m)) if prob["name"] != "product" else 1
    out = {}
    for est in ("hard", "soft", "resampled"):
        a = np.asarray(stats[est], np.float64)
        out[f"sd_{est}"] = float(a[:, j].std(ddof=1))
        out[f"tv_{est}"] = float(np.mean(0.5 * np.abs(a - m).sum(1)))
    out["mass_mean"] = float(np.asarray(stats["hard"])[:, j].mean())
    out["std_mean"] = float(np.nanmean(np.asarray(stats["std"])))
    lz = np.asarray(stats["log_z"], np.float64)
    out["logz_err_mean"] = float(np.mean(lz - prob["log_z"]))
    out["logz_sd"] = float(lz.std(ddof=1))
    out["ess_mean"] = float(np.mean(stats["ess"]))
    out["num_resampling"] = float(np.mean(stats["nres"]))
    return out


def run_config(prob, name, cfg, n, k, seeds, key):
    one, cost = build_sampler(prob, cfg, n, k)
    f = jax.jit(jax.vmap(one))
    keys = jax.random.split(key, seeds)
    t0 = time.perf_counter()
    stats = jax.tree.map(np.asarray, jax.block_until_ready(f(keys)))
    wall = time.perf_counter() - t0
    row = dict(problem=prob["name"], lever=name, N=n, K=k, cost=cost, seeds=seeds, wall_s=wall, **summarise(prob, stats, n))
    return row


def print_row(r, fl):
    print(f"{r['problem']:9s} {r['lever']:38s} N={r['N']:<7d} K={r['K']:<5d} cost={r['cost']:<5d} "
          f"sd={r['sd_hard']:.4f} ({r['sd_hard'] / fl['sd_floor']:.1f}x) sdRB={r['sd_soft']:.4f} sdRes={r['sd_resampled']:.4f} "
          f"TV={r['tv_hard']:.4f} ({r['tv_hard'] / fl['tv_floor']:.1f}x) std={r['std_mean']:.3f} "
          f"dlogZ={r['logz_err_mean']:+.3f}±{r['logz_sd']:.3f} ess={r['ess_mean']:.2f} {r['wall_s']:.1f}s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument("--problems", default="product,anneal2,anneal3")
    ap.add_argument("--levers", default=None, help="comma-separated substrings of lever names to run")
    ap.add_argument("--scaling", default="FKC plain (systematic, ESS 0.5);DEFAULT: Hilbert every step + eta (2-t)g",
                    help="';'-separated lever names for the N x K sweep")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--levers-for", default="product,anneal2,anneal3", help="problems on which the lever table runs")
    ap.add_argument("--n0", type=int, default=None, help="N of the lever table (default 2^10 quick, 2^14 full)")
    ap.add_argument("--k0", type=int, default=None, help="K of the lever table (default 100 quick, 200 full)")
    ap.add_argument("--budget", type=float, default=1e9, help="stop starting new configurations after this many seconds")
    ap.add_argument("--anneal-levers", default="unweighted,plain,every step,eta 1.5,eta 2,MALA x1 (K/3,trapezoid,late start t<0.5,4 islands,HMC",
                    help="substrings selecting the levers run on the annealing problems")
    ap.add_argument("--plot", default=None, help="only plot this JSON to docs/img/fkc_variance.png")
    args = ap.parse_args()
    if args.plot:  # one or more JSON files, comma-separated: rows and floors are concatenated
        res = {"rows": [], "floors": []}
        for f in args.plot.split(","):
            d = json.load(open(f))
            res["rows"] += d["rows"]
            res["floors"] += d["floors"]
        plot(res, Path("docs/img/fkc_variance.png"))
        return
    plat = jax.devices()[0].platform
    if args.quick:
        n0, k0 = 2**10, 100
        sweep = [(2**12, 100), (2**10, 400)]
    else:
        n0, k0 = 2**14, 200
        sweep = [(2**12, 200), (2**14, 200), (2**16, 200), (2**18, 200), (2**14, 100), (2**14, 1000)]
    n0, k0 = args.n0 or n0, args.k0 or k0
    probs = {"product": product_problem, "anneal2": lambda: anneal_problem(2.0), "anneal3": lambda: anneal_problem(3.0)}
    rng = np.random.default_rng(0)
    rows, floor_rows = [], []
    key = jax.random.PRNGKey(0)
    t_start = time.perf_counter()
    for pname in args.problems.split(","):
        prob = probs[pname]()
        levers = lever_table(k0)
        if args.quick:  # SSP is a sequential scan over the particles: CPU / small N only
            levers.append(("Hilbert-SSP, every step", {**BASE, "resampling": "hilbert-ssp", "ess": 1.0}, k0))
        if pname == "product":
            pats = args.levers.split(",") if args.levers else None
        else:
            pats = args.anneal_levers.split(",")
        if pats:
            levers = [lv for lv in levers if any(p in lv[0] for p in pats)]
        if pname not in args.levers_for.split(","):
            levers = []
        fl = floors(prob["masses"], n0, rng)
        floor_rows.append(dict(problem=pname, N=n0, **fl))
        print(f"== {pname}: N = {n0}, K = {k0}, sd floor {fl['sd_floor']:.4f}, TV floor {fl['tv_floor']:.4f}", flush=True)
        for name, cfg, k in levers:
            if time.perf_counter() - t_start > args.budget:
                print("time budget reached: skipping", pname, name, flush=True)
                continue
            r = run_config(prob, name, cfg, n0, k, args.seeds, key)
            r.update(sd_floor=fl["sd_floor"], tv_floor=fl["tv_floor"])
            rows.append(r)
            print_row(r, fl)
            save(args, rows, floor_rows, t_start)
        if not args.no_scaling:
            names = args.scaling.split(";")
            table = {nm: (cfg, k) for nm, cfg, k in lever_table(k0)}
            for n, k in sweep:
                fl = floors(prob["masses"], n, rng)
                floor_rows.append(dict(problem=pname, N=n, **fl))
                if True:
                    for nm in names:
                        if time.perf_counter() - t_start > args.budget:
                            continue
                        cfg, _ = table[nm]
                        r = run_config(prob, nm, cfg, n, k, args.seeds, key)
                        r.update(sd_floor=fl["sd_floor"], tv_floor=fl["tv_floor"], sweep=True)
                        rows.append(r)
                        print_row(r, fl)
                        save(args, rows, floor_rows, t_start)
    out = save(args, rows, floor_rows, t_start)
    print(f"wrote {out} ({time.perf_counter() - t_start:.0f} s)")


def save(args, rows, floor_rows, t_start) -> Path:
    plat = jax.devices()[0].platform
    out = Path(args.out or f"benchmarks/results/fkc_variance_{'gpu' if plat == 'gpu' else 'cpu'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(platform=plat, device=str(jax.devices()[0].device_kind), jax=jax.__version__, python=platform.python_version(),
                seeds=args.seeds, quick=args.quick, total_s=time.perf_counter() - t_start, process="VP", t_min=TMIN)
    json.dump(dict(meta=meta, floors=floor_rows, rows=rows), open(out, "w"), indent=1)
    return out


def plot(res: dict, path: Path):
    """Left: every lever at N = n0 (sd of a mode's mass / binomial floor, per problem, log scale).
    Right: the N sweep (sd and TV of plain FKC and of the defaults against the floors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    table = [r for r in rows if not r.get("sweep")]
    sweep = [r for r in rows if r.get("sweep")]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 7), gridspec_kw={"width_ratios": [1.6, 1]})
    levers = []
    for r in table:
        if r["lever"] not in levers:
            levers.append(r["lever"])
    probs = sorted({r["problem"] for r in table})
    y = np.arange(len(levers))
    for j, p in enumerate(probs):
        vals = [next((r["sd_hard"] / r["sd_floor"] for r in table if r["problem"] == p and r["lever"] == lv), np.nan) for lv in levers]
        ax.barh(y + (j - 1) * 0.27, vals, height=0.27, label=p)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.axvline(2.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, levers, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("sd over seeds of a mode's mass / binomial floor")
    ax.legend(fontsize=8)
    n0 = table[0]["N"] if table else 0
    ax.set_title(f"levers at N = {n0} (equal score evaluations unless '2x')", fontsize=9)
    for p in sorted({r["problem"] for r in sweep}):
        for lv, ls in (("FKC plain", "-"), ("DEFAULT", "--")):
            pts = sorted((r["N"], r["tv_hard"]) for r in sweep if r["problem"] == p and r["lever"].startswith(lv) and r["K"] == 200)
            if pts:
                bx.loglog(*zip(*pts), ls, marker="o", label=f"{p}: {lv.lower()} TV")
        fl = sorted({(f["N"], f["tv_floor"]) for f in res["floors"] if f["problem"] == p})
        if fl:
            bx.loglog(*zip(*fl), ":", color="k", lw=0.8)
    bx.set_xlabel("N particles (K = 200)")
    bx.set_ylabel("mode-occupancy TV (dotted: floor of N exact draws)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
