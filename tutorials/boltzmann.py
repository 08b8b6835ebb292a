# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Temperature annealing of a Lennard-Jones cluster with Feynman-Kac correctors
#
# A diffusion model trained on samples of a molecular system at temperature $T$ learns the score
# of $p_T(x)\propto e^{-E(x)/T}$. The same system at a *lower* temperature $T'$ has density
# $p_{T'}\propto p_T^{\beta}$ with $\beta=T/T'$, so sampling it is an **annealing** problem: no
# new data, no retraining. Multiplying the score by $\beta$ in the reverse SDE does not sample
# $p_T^\beta$ (the noised power is not the power of the noised density); Feynman-Kac correctors
# (Skreta et al. 2025, arXiv 2503.02819, §5.2) add importance weights computed from the score
# alone, $r=(\beta-1)\nabla\!\cdot f+g^2\beta(\beta-1)\|s\|^2/2$, and resample.
#
# Here: the 13-particle Lennard-Jones cluster LJ-13 in the form of the DEM/iDEM papers, a
# reference sampled by BlackJAX HMC at $T=2, 1.5, 1$ (cached in `benchmarks/data/`), the
# equivariant score network shipped with probkit (trained at $T=2$), and `probkit.fkc.anneal`
# from $T=2$ to $T=1.5$, against the unweighted scaled-score SDE. The run below is small so that
# it finishes on a laptop CPU; the full-size GPU comparison is `benchmarks/boltzmann.py`.

# %%
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

if "ipykernel" not in os.environ.get("MPLBACKEND", "") and not hasattr(__builtins__, "__IPYTHON__"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import wasserstein_distance

import probkit
from probkit import fkc
from probkit.models import boltzmann as bz

FIG_DIR = Path(os.environ.get("PROBKIT_FIG_DIR", Path(tempfile.gettempdir()) / "probkit_figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
REPO = Path(probkit.__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data"
lj = bz.LJ13
print(lj)

# %% [markdown]
# ## The energy
#
# $E(x)=\lambda\sum_{i\neq j}\epsilon[(r_m/d_{ij})^{12}-2(r_m/d_{ij})^6]+\tfrac{c}{2}\sum_i\|x_i-\bar x\|^2$
# with $\epsilon=r_m=1$, $\lambda=1$ (ordered pairs, i.e. twice the usual pair sum) and an
# oscillator $c=1$ that keeps the cluster together; below $0.8\,r_m$ the pair term is continued by
# its tangent so that overlapping particles have finite energy. With $\lambda=1/2$ and no
# oscillator this is the plain LJ energy, whose icosahedral minimum is $-44.326801$:

# %%
def icosahedron(radius):
    p = (1 + 5**0.5) / 2
    v = np.array([(0, a, b * p) for a in (-1, 1) for b in (-1, 1)]
                 + [(a, b * p, 0) for a in (-1, 1) for b in (-1, 1)]
                 + [(b * p, 0, a) for a in (-1, 1) for b in (-1, 1)], float)
    return np.vstack([np.zeros(3), radius * v / np.linalg.norm(v[0])])


plain = bz.LennardJones(energy_factor=0.5, oscillator_scale=0.0, soft_core=None)
radii = np.linspace(0.9, 1.05, 301)
e_plain = np.array([float(plain.energy(icosahedron(r))) for r in radii])
e_dem = np.array([float(lj.energy(icosahedron(r))) for r in radii])
print(f"plain LJ-13 minimum over the icosahedron radius: {e_plain.min():.4f}")
print(f"DEM form minimum: {e_dem.min():.4f}")

# %% [markdown]
# Energies are invariant under rotations, reflections, translations and permutations, so the
# density lives on the centre-of-mass-free subspace. probkit samples there, in the 36 internal
# coordinates $y=Hx$ ($H$ the Helmert matrix): `bz.to_internal` / `bz.from_internal`.
#
# ## Reference samples
#
# `benchmarks/boltzmann_reference.py` ran 4096 vmapped BlackJAX HMC chains per temperature on a
# GPU (split R-hat of the energy ≤ 1.006); 8192 thinned draws per temperature are cached.

# %%
ref = {T: np.load(DATA / f"lj13_T{T:.1f}.npz")["positions"] for T in (2.0, 1.5, 1.0)}
with open(DATA / "lj13_reference.json") as f:
    diag = {r["temperature"]: r["diagnostics"]["energy"] for r in json.load(f)["runs"]}
for T, x in ref.items():
    e = np.asarray(lj.energy(x))
    print(f"T = {T}: <E> = {e.mean():7.2f} ± {e.std():5.2f}   R-hat(E) = {diag[T]['rhat']:.3f}, "
          f"ESS(E) = {diag[T]['ess_bulk']:.0f}")

# %% [markdown]
# ## Annealing an exact score first
#
# A harmonic cluster ($E=\tfrac{k}{2}\sum_i\|x_i-\bar x\|^2$, 4 particles in 2-D) is Gaussian in
# the internal coordinates, $N(0,\tfrac{T}{k}I)$, so its noised score is exact and the law at
# $T/\beta$ is known. FKC recovers it; the scaled-score SDE without weights does not (its
# variance tends to $1/3$ instead of $1/2$ here). `tests/test_boltzmann.py` also checks the
# log-normalising constant `out.log_evidence` against its closed form.

# %%
from probkit.diffusion import VP  # noqa: E402

proc = VP()
k_spring, T_train, beta_h = 2.0, 2.0, 2.0
v = T_train / k_spring


def harmonic_score(y, t):
    return -y / (proc.alpha(t) ** 2 * v + proc.sigma(t) ** 2)


s2 = float(proc.alpha(proc.t_min) ** 2 * v + proc.sigma(proc.t_min) ** 2)
for weighted in (True, False):
    out = fkc.anneal(jax.random.PRNGKey(0), proc, harmonic_score, beta_h, 2048, 200, shape=(6,), weighted=weighted,
                     eta=1.0, resampling="systematic", ess_threshold=0.5)
    var = float(jnp.sum(out.weights[:, None] * out.particles**2) / 6)
    print(f"weighted={weighted!s:5}: variance {var:.4f} (exact {s2 / beta_h:.4f}), final ESS {float(out.ess[-1]):.0f}")

# %% [markdown]
# ## LJ-13: from T = 2 to T = 1.5 with the shipped score model
#
# `bz.load_pretrained()` returns the E(n)-equivariant network (EGNN) trained at $T=2$ by
# denoising score matching (`benchmarks/train_boltzmann.py`); `bz.score_fn` wraps it as a
# `jax.tree_util.Partial` whose parameters are traced arrays. We anneal with $\beta=2/1.5$ on a
# quadratic time grid (denser near the data, where the score is stiff), with the reverse SDE
# ($\eta=g$) and systematic resampling when the ESS drops below $N/2$, the settings of the
# benchmark. Small sizes: 48 particles, 30 steps.

# %%
model = bz.load_pretrained()
score = bz.score_fn(model)
T_target = 1.5
beta = model.temperature / T_target
N, K = 48, 30
runs = {}
for name, weighted in (("FKC", True), ("scaled-score SDE", False)):
    t0 = time.perf_counter()
    out = fkc.anneal(jax.random.PRNGKey(1), model.process, score, beta, N, K, shape=(36,), weighted=weighted,
                     grid="quadratic", eta=1.0, resampling="systematic", ess_threshold=0.5)
    x = np.asarray(bz.from_internal(out.particles, 13, 3))
    w = np.asarray(out.weights, np.float64) if weighted else np.full(N, 1.0 / N)
    runs[name] = (x, w / w.sum())
    print(f"{name}: {time.perf_counter() - t0:.1f}s, final ESS {float(1 / np.sum(w**2 / w.sum()**2)):.0f}/{N}, "
          f"resampled {int(out.resampled.sum())} times")

e_ref, d_ref = np.asarray(lj.energy(ref[T_target])), np.asarray(lj.distances(ref[T_target])).ravel()
for name, (x, w) in runs.items():
    e, d = np.asarray(lj.energy(x)), np.asarray(lj.distances(x))
    ok = np.isfinite(e)
    print(f"{name:17s} W1(energy) = {wasserstein_distance(e[ok], e_ref, w[ok]):6.2f}   "
          f"W1(distances) = {wasserstein_distance(d.ravel(), d_ref, np.repeat(w, 78)):.4f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
bins_e = np.linspace(-60, 40, 60)
bins_d = np.linspace(0.6, 6.0, 60)
axes[0].hist(e_ref, bins_e, density=True, histtype="step", color="k", lw=2, label=f"reference T={T_target}")
axes[0].hist(np.asarray(lj.energy(ref[2.0])), bins_e, density=True, histtype="step", color="gray", ls="--",
             label="reference T=2 (training)")
axes[1].hist(d_ref, bins_d, density=True, histtype="step", color="k", lw=2)
for (name, (x, w)), c in zip(runs.items(), ("C0", "C3")):
    axes[0].hist(np.clip(np.asarray(lj.energy(x)), -60, 40), bins_e, weights=w, density=True, histtype="step",
                 color=c, label=name)
    axes[1].hist(np.asarray(lj.distances(x)).ravel(), bins_d, weights=np.repeat(w, 78), density=True,
                 histtype="step", color=c)
axes[0].set_xlabel("energy")
axes[1].set_xlabel("interatomic distance")
axes[0].legend(fontsize=8)
fig.suptitle(f"LJ-13, annealed from T=2 to T={T_target} ({N} particles, {K} steps)")
fig.tight_layout()
fig.savefig(FIG_DIR / "boltzmann_small.png", dpi=80)
plt.show()

# %% [markdown]
# ## An exact-energy MCMC corrector at t = 0
#
# At $t=0$ the annealed target $\propto e^{-E/T'}$ is known up to a constant, so an SMC sampler can
# end with MCMC moves that leave it invariant: `bz.mcmc_refine` resamples the weighted particles
# and runs MALA on the exact energy (the first half of the steps adapt the step size). Local
# (vibrational) relaxation is fast; the population of basins comes from the diffusion sampler and
# relaxes slowly. With 48 particles and 30 steps the W1 values below are dominated by Monte Carlo
# noise (about ±1.5 for 48 draws of an energy with sd 12) and by the coarse time grid; at the
# benchmark's size (8192 particles, 500 steps, 8 seeds, table below) FKC + 400 MALA steps reaches
# W1(energy) 0.43 ± 0.18 at $T=1.5$, the scaled-score SDE + the same steps 1.07 ± 0.14.

# %%
for name, (x, w) in runs.items():
    y = bz.to_internal(jnp.asarray(x, jnp.float32), 13, 3)
    refined = bz.mcmc_refine(jax.random.PRNGKey(2), lj, T_target, y, 100, log_weights=jnp.log(jnp.asarray(w)))
    e = np.asarray(lj.energy(bz.from_internal(refined.samples[:, -1], 13, 3)))
    print(f"{name:17s} + 100 MALA steps: W1(energy) = {wasserstein_distance(e, e_ref):6.2f}  "
          f"(acceptance {float(refined.acceptance):.2f})")

# %% [markdown]
# With 48 particles and 30 steps the histograms are noisy. The full-size comparison
# (`benchmarks/boltzmann.py`: 8192 particles, 500 steps, several seeds, one GPU) is stored in
# `benchmarks/results/boltzmann_gpu.json`:

# %%
res_path = REPO / "benchmarks" / "results" / "boltzmann_gpu.json"
if res_path.exists():
    with open(res_path) as f:
        res = json.load(f)
    main_grid = res.get("grids", ["uniform"])[0]
    print(f"{res['device_kind']}, N = {res['num_particles']}, K = {res['num_steps']}, grid = {main_grid}")
    print(f"{'T':>4} {'method':15s} {'W1(E)':>14} {'W1(d)':>16} {'wall s':>7}")
    for s in res["summary"]:
        if s.get("grid", "-") in (main_grid, "-"):
            print(f"{s['target_T']:>4} {s['method']:15s} {s['w1_energy']:7.3f}±{s.get('w1_energy_sd', 0):.3f} "
                  f"{s['w1_distance']:8.4f}±{s.get('w1_distance_sd', 0):.4f} {s.get('wall_s', 0):7.2f}")
