# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bayesian estimation of differential privacy
#
# A privacy audit runs a membership test many times: on `n_negative` trials the target record is
# absent (saying "member" is a false positive), on `n_positive` trials it is present (saying
# "non-member" is a false negative). A mechanism is $(\varepsilon, \delta)$-DP only if every test's
# false-positive rate $\alpha$ and false-negative rate $\beta$ satisfy
#
# $$\alpha + e^\varepsilon \beta \ge 1 - \delta, \qquad \beta + e^\varepsilon \alpha \ge 1 - \delta,$$
#
# so the rates of an attack imply $\varepsilon \ge \max\{\log\frac{1-\delta-\alpha}{\beta}, \log\frac{1-\delta-\beta}{\alpha}, 0\}$.
# Zanella-Béguelin et al. (2023, *Bayesian Estimation of Differential Privacy*, ICML,
# arXiv:2206.05199) put Beta priors on $\alpha$ and $\beta$, get Beta posteriors from the counts,
# and push them through this bound: a posterior of $\varepsilon$, with credible intervals that are
# narrower than the Clopper–Pearson construction at the same level.
#
# This tutorial audits a Gaussian mechanism (known ground truth), plots the posterior of
# $(\alpha, \beta)$ over the privacy region and the posterior of $\varepsilon$, then audits DP-SGD.

# %%
import os

os.environ.setdefault("MPLBACKEND", "Agg")
import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from probkit.privacy import (
    DPSGDConfig,
    GaussianMechanism,
    audit_from_scores,
    best_threshold,
    clopper_pearson_epsilon,
    dpsgd_audit,
    eps_delta_tradeoff,
    epsilon_confidence_interval,
    epsilon_posterior,
    gdp_posterior,
    rate_posteriors,
    simulate_counts,
    simulate_scores,
)

# %% [markdown]
# ## An audit of the Gaussian mechanism
# The Gaussian mechanism with $\mu = \Delta/\sigma = 1$ is $\mu$-GDP: without the record the
# attacker sees $N(0, 1)$, with it $N(\mu, 1)$. At $\delta = 10^{-2}$ its exact $\varepsilon$ is
# `mech.epsilon(delta)`. The threshold attack that attains it is found by `best_threshold`;
# we run it 5000 times on each side. (At smaller $\delta$ the optimal attack lives at rates of
# $10^{-6}$ and below, which only very large audits can see.)

# %%
delta = 1e-2
mech = GaussianMechanism(1.0)
eps_true = mech.epsilon(delta)
t = best_threshold(mech, delta)
t = max(t, mech.mu - t)  # by symmetry t and mu - t attain the same eps: take the low-FPR attack
fpr, fnr = (float(r) for r in mech.rates(t))
n = 5000
counts = simulate_counts(jax.random.PRNGKey(0), mech, n, n, t)
fp, fn = int(counts.fp[0]), int(counts.fn[0])
print(f"true eps = {eps_true:.3f}; threshold {t:.2f}: FPR {fpr:.4f}, FNR {fnr:.4f}; observed fp = {fp}/{n}, fn = {fn}/{n}")

# %%
post = epsilon_posterior(fp, n, fn, n, delta, num_samples=50_000, key=jax.random.PRNGKey(1))
mc = epsilon_posterior(fp, n, fn, n, delta, method="monte_carlo", num_samples=200_000, key=jax.random.PRNGKey(2))
s = post.summary(0.95)
cp_lower = clopper_pearson_epsilon(fp, n, fn, n, delta, 0.95)
cp_lo, cp_hi = epsilon_confidence_interval(fp, n, fn, n, delta, 0.95)
print(f"posterior mean {s['mean']:.3f}, mode {s['mode']:.3f}")
print(f"95% credible interval (equal-tailed) [{s['interval'][0]:.3f}, {s['interval'][1]:.3f}]  "
      f"(Monte Carlo: [{mc.interval()[0]:.3f}, {mc.interval()[1]:.3f}])")
print(f"95% HPD interval [{s['hpd_interval'][0]:.3f}, {s['hpd_interval'][1]:.3f}]")
print(f"95% Clopper-Pearson interval [{cp_lo:.3f}, {cp_hi:.3f}]; one-sided lower bound {cp_lower:.3f}")
print(f"P(eps > {eps_true:.2f}) = {float(post.prob_exceeds(eps_true)):.3f}: a claim of eps = 1 is refuted with "
      f"posterior probability {float(post.prob_exceeds(1.0)):.4f}")

# %% [markdown]
# ## The posterior of $(\alpha, \beta)$ over the privacy region
# The posterior is a product of two Beta densities. The $(\varepsilon, \delta)$ region is the set
# above the piecewise-linear curve $\beta \ge \max(1-\delta-e^\varepsilon\alpha, e^{-\varepsilon}(1-\delta-\alpha))$;
# the posterior mass inside the region for $\varepsilon = e$ is $P(\varepsilon \le e)$. The curves are
# drawn at the posterior 2.5%, 50% and 97.5% quantiles of $\varepsilon$, with the mechanism's true
# trade-off curve (any attack lies on or above it).

# %%
(a1, b1), (a2, b2) = rate_posteriors(fp, n, fn, n)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
ax = axes[0]
alpha_grid = np.linspace(0.0, 1.0, 400)
ax.plot(alpha_grid, mech.tradeoff(alpha_grid), color="k", lw=1, label=r"Gaussian mechanism $G_\mu$")
for q, style in zip(post.quantile([0.025, 0.5, 0.975]), (":", "-", "--")):
    ax.plot(alpha_grid, eps_delta_tradeoff(alpha_grid, q, delta), "C3", ls=style, lw=1,
            label=fr"$(\varepsilon={q:.2f}, \delta)$ boundary")
ax.scatter([fp / n], [fn / n], color="C0", zorder=3, s=12, label="observed rates")
ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=r"FPR $\alpha$", ylabel=r"FNR $\beta$", title="privacy region")
ax.legend(fontsize=7)
# zoom on the posterior mass
ax = axes[1]
alo, ahi = stats.beta.ppf([1e-4, 1 - 1e-4], a1, b1)
blo, bhi = stats.beta.ppf([1e-4, 1 - 1e-4], a2, b2)
A, B = np.meshgrid(np.linspace(alo, ahi, 200), np.linspace(blo, bhi, 200))
dens = stats.beta.pdf(A, a1, b1) * stats.beta.pdf(B, a2, b2)
ax.contourf(A, B, dens, levels=12, cmap="Blues")
for q, style in zip(post.quantile([0.025, 0.5, 0.975]), (":", "-", "--")):
    ax.plot(A[0], eps_delta_tradeoff(A[0], q, delta), "C3", ls=style, lw=1.2)
ax.plot(A[0], mech.tradeoff(A[0]), "k", lw=1)
ax.set(xlim=(alo, ahi), ylim=(blo, bhi), xlabel=r"FPR $\alpha$", ylabel=r"FNR $\beta$",
       title=r"posterior of $(\alpha,\beta)$ (zoom)")
fig.tight_layout()
fig.savefig("privacy_region.png", dpi=110)
plt.show()

# %% [markdown]
# ## The posterior of $\varepsilon$
# Density from the integrated CDF (numerical integration over $\alpha$ with Beta survival functions
# in $\beta$), a Monte Carlo histogram from JAX draws of $(\alpha, \beta)$, the credible intervals,
# the Clopper–Pearson interval and the truth.

# %%
lo, hi = post.quantile([0.0005, 0.9995])
edges = np.linspace(lo, hi, 161)
density = np.diff(post.cdf(edges)) / np.diff(edges)
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.hist(np.asarray(mc.samples), bins=edges, density=True, color="C0", alpha=0.3, label="Monte Carlo draws")
ax.plot(0.5 * (edges[1:] + edges[:-1]), density, "C0", label="numerical integration")
ax.axvspan(*s["interval"], color="C0", alpha=0.12, label="95% credible interval")
ax.axvline(eps_true, color="k", label=fr"true $\varepsilon$ = {eps_true:.2f}")
ax.axvline(cp_lo, color="C3", ls="--", label="95% Clopper-Pearson interval")
if np.isfinite(cp_hi):
    ax.axvline(cp_hi, color="C3", ls="--")
ax.set(xlabel=r"$\varepsilon$", ylabel="density", title=fr"posterior of $\varepsilon$ ($\delta$ = {delta:g})")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("privacy_epsilon_posterior.png", dpi=110)
plt.show()
print(f"credible interval width {s['interval'][1] - s['interval'][0]:.3f} vs Clopper-Pearson {cp_hi - cp_lo:.3f}")

# %% [markdown]
# ## Beyond counts: the posterior of $\mu$ from raw scores
# With the raw attack scores, a Gaussian model (non-members $N(m, s^2)$, members
# $N(m + \mu s, s^2)$) gives a posterior of the GDP parameter $\mu$ itself, sampled by BlackJAX
# NUTS on the numpyro model's log density, with ArviZ diagnostics.

# %%
neg, pos = simulate_scores(jax.random.PRNGKey(3), mech, 300, 300)
gdp = gdp_posterior(jax.random.PRNGKey(4), neg, pos, num_samples=300, num_warmup=150, num_chains=2)
import arviz as az  # noqa: E402

idata = gdp.to_inference_data()
print(az.summary(idata, var_names=["mu"], round_to=3))
eps_draws = np.asarray(gdp.epsilon(delta)).ravel()
print(f"mu: true {mech.mu}, posterior mean {float(gdp.mu.mean()):.3f}; eps({delta:g}) 95% interval "
      f"[{np.quantile(eps_draws, 0.025):.3f}, {np.quantile(eps_draws, 0.975):.3f}] (true {eps_true:.3f})")

# %% [markdown]
# ## From raw scores: an honest privacy curve
# An auditor usually has one attack score per trial and the membership labels, not counts. The
# best threshold is unknown, and picking it on the same data that then estimates
# $\varepsilon$ inflates the estimate. `audit_from_scores` picks the threshold for each
# $\delta$ on a random calibration half and computes the posterior on the held-out half, so the
# privacy curve $\varepsilon(\delta)$ comes with honest credible bands, beside the
# Clopper–Pearson lower bound and the $\mu$-GDP band (one $\mu$ describes every threshold when
# the ROC is binormal; its probit slope checks that). `verdict` turns a claimed
# $(\varepsilon, \delta)$ into $P(\varepsilon > \text{claim})$.

# %%
n_scores = 5000
neg, pos = simulate_scores(jax.random.PRNGKey(6), mech, n_scores, n_scores)
scores = np.concatenate([neg, pos])
labels = np.r_[np.zeros(n_scores), np.ones(n_scores)]
deltas = [1e-3, 1e-2, 0.05, 0.1, 0.2]
audit = audit_from_scores(scores, labels, deltas=deltas, level=0.9)
truth = [mech.epsilon(d) for d in deltas]
for d, lo_, med, hi_, cp, tr in zip(deltas, audit.eps_lower, audit.eps_median, audit.eps_upper, audit.cp_lower, truth):
    print(f"delta {d:6g}: eps median {med:.3f}, 90% band [{lo_:.3f}, {hi_:.3f}], CP lower {cp:.3f}, true {tr:.3f}")
print("mu-GDP:", {k: audit.gdp[k] for k in ("mu_interval", "probit_slope")})
print("verdict on the claim (eps = 1, delta = 0.01):", audit.verdict(1.0, 1e-2)["prob_eps_exceeds_claim"])

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.fill_between(deltas, audit.eps_lower, audit.eps_upper, alpha=0.3, label="90% credible band (held-out)")
ax.plot(deltas, audit.eps_median, "o-", label="posterior median")
ax.plot(deltas, audit.cp_lower, "s--", color="C3", label="Clopper-Pearson lower bound")
ax.fill_between(deltas, audit.gdp["eps_lower"], audit.gdp["eps_upper"], color="C2", alpha=0.2, label=r"$\mu$-GDP band")
ax.plot(deltas, truth, "k", lw=1, label="true curve")
ax.set(xscale="log", xlabel=r"$\delta$", ylabel=r"$\varepsilon$", title="privacy curve from raw scores")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("privacy_curve.png", dpi=110)
plt.show()

# %% [markdown]
# From the command line the same audit, with a figure and a JSON file, is
# `probkit privacy report --scores scores.csv --labels labels.npy --claim 1,1e-2 --out report`.

# %% [markdown]
# ## Auditing DP-SGD
# `dpsgd_audit` trains many softmax-regression models on the 8x8 digits at once (vmap over
# models) with DP-SGD — Poisson sampling, per-example clipping, Gaussian noise — with
# out-of-distribution canaries present with probability 1/2, then tests membership by the canary's
# loss and compares the estimate with the RDP and PLD accountants. Several canaries per model is
# the multi-sample heuristic. This configuration is tiny (it runs in seconds); see
# `benchmarks/dpsgd_audit.py` for thousands of models on a GPU.

# %%
cfg = DPSGDConfig(num_models=64, num_train=128, canaries_per_model=4, steps=40, sampling_rate=0.2,
                  noise_multiplier=1.5, learning_rate=1.0)
res = dpsgd_audit(jax.random.PRNGKey(5), cfg)
summary = res.summary()
print({k: summary[k] for k in ("counts", "eps_posterior_mean", "eps_credible_interval", "eps_clopper_pearson_lower",
                               "eps_accountant_rdp", "eps_accountant_pld", "test_accuracy")})
