"""probkit.models.boltzmann: LJ-13 / DW-4 energies, forces, symmetries, CoM-free coordinates,
annealing an exact score with FKC, saved models, cached reference data, and bad inputs."""
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from probkit import fkc
from probkit.diffusion import VP
from probkit.models import boltzmann as bz

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLAIN = bz.LennardJones(energy_factor=0.5, oscillator_scale=0.0, soft_core=None)


def icosahedron(radius: float) -> np.ndarray:
    """Centre + 12 vertices of a regular icosahedron at distance ``radius`` from the centre."""
    p = (1 + 5**0.5) / 2
    v = []
    for a in (-1, 1):
        for b in (-1, 1):
            v += [(0, a, b * p), (a, b * p, 0), (b * p, 0, a)]
    v = np.array(v, float)
    v /= np.linalg.norm(v[0])
    return np.vstack([np.zeros(3), radius * v])


def _min_over_radius(system) -> float:
    with jax.enable_x64(True):
        f = lambda r: float(system.energy(jnp.asarray(icosahedron(r))))  # noqa: E731
        return minimize_scalar(f, bounds=(0.8, 1.2), method="bounded", options={"xatol": 1e-10}).fun


def test_lj13_icosahedral_minimum_plain_and_dem_forms():
    # plain LJ (epsilon = 1, r_m = 1, pair sum): the known global minimum of LJ-13
    assert _min_over_radius(PLAIN) == pytest.approx(-44.326801, abs=2e-6)
    # the DEM form (ordered-pair sum + oscillator), as documented
    assert _min_over_radius(bz.LJ13) == pytest.approx(-83.089644, abs=2e-5)
    # and it is a stationary point in all 39 coordinates (forces vanish at the optimal radius)
    with jax.enable_x64(True):
        r = minimize_scalar(lambda r: float(PLAIN.energy(jnp.asarray(icosahedron(r)))), bounds=(0.8, 1.2),
                            method="bounded", options={"xatol": 1e-12}).x
        assert float(jnp.max(jnp.abs(PLAIN.force(jnp.asarray(icosahedron(r)))))) < 1e-5


@pytest.mark.parametrize("system", [bz.LJ13, PLAIN, bz.DW4], ids=["lj13", "lj13_plain", "dw4"])
def test_forces_match_finite_differences(system):
    rng = np.random.default_rng(0)
    if system.n_particles == 13:
        x = icosahedron(1.0) + 0.08 * rng.standard_normal((13, 3))
    else:
        x = 2.0 * rng.standard_normal((4, 2))
    with jax.enable_x64(True):
        x = jnp.asarray(x)
        f = np.asarray(system.force(x))
        h = 1e-6
        for idx in [(0, 0), (3, 1), (system.n_particles - 1, system.spatial_dim - 1)]:
            e = np.zeros(x.shape)
            e[idx] = h
            fd = -(float(system.energy(x + e)) - float(system.energy(x - e))) / (2 * h)
            assert fd == pytest.approx(f[idx], rel=1e-5, abs=1e-6)
        # flat and batched layouts agree
        assert np.allclose(np.asarray(system.force(x.reshape(-1))), f.reshape(-1))
        assert system.energy(jnp.stack([x, x])).shape == (2,)


def test_lj_soft_core_is_c1_and_finite():
    s = bz.LJ13
    rs = s.soft_core * s.r_m
    with jax.enable_x64(True):
        u = lambda r: s.pair_energy(jnp.asarray(r))  # noqa: E731
        assert float(u(rs - 1e-9)) == pytest.approx(float(u(rs + 1e-9)), abs=1e-6)
        du = jax.grad(lambda r: s.pair_energy(r))
        assert float(du(rs - 1e-7)) == pytest.approx(float(du(rs + 1e-7)), rel=1e-5)
        assert np.isfinite(float(u(0.0))) and float(u(1.0)) == pytest.approx(-1.0)
        # above r_s the plain pair energy is unchanged
        assert float(u(0.9)) == pytest.approx(float(PLAIN.pair_energy(jnp.asarray(0.9))), rel=1e-12)
    # overlapping particles: finite energy and forces
    x = np.zeros((13, 3))
    x[1:] = icosahedron(1.0)[1:]
    assert np.isfinite(float(s.energy(x))) and np.all(np.isfinite(np.asarray(s.force(x))))


def test_invariances_and_com_free_coordinates():
    rng = np.random.default_rng(1)
    x = icosahedron(1.0) + 0.1 * rng.standard_normal((13, 3))
    q = np.asarray(bz.random_orthogonal(jax.random.PRNGKey(0), 3))
    perm = rng.permutation(13)
    x2 = x[perm] @ q.T + np.array([0.3, -1.0, 2.0])
    assert float(bz.LJ13.energy(x2)) == pytest.approx(float(bz.LJ13.energy(x)), rel=1e-5)
    d1, d2 = np.sort(np.asarray(bz.LJ13.distances(x))), np.sort(np.asarray(bz.LJ13.distances(x2)))
    assert np.allclose(d1, d2, atol=1e-5) and d1.shape == (78,)
    h = bz.helmert(13)
    assert np.allclose(h @ h.T, np.eye(12)) and np.allclose(h @ np.ones(13), 0)
    y = bz.to_internal(x, 13, 3)
    assert y.shape == (36,)
    assert np.allclose(np.asarray(bz.from_internal(y, 13, 3)), np.asarray(bz.remove_com(x, 13, 3)), atol=1e-5)
    assert float(bz.LJ13.internal_energy(y)) == pytest.approx(float(bz.LJ13.energy(x)), rel=1e-5)
    # augmentation keeps the energy
    ya = bz.augment(jax.random.PRNGKey(3), y, 13, 3)
    assert float(bz.LJ13.internal_energy(ya)) == pytest.approx(float(bz.LJ13.energy(x)), rel=1e-5)


def test_dw4_pair_formula():
    x = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 3.0], [5.0, 3.0]])
    d = np.array([5.0, 3.0, math.hypot(5, 3), math.hypot(5, 3), 3.0, 5.0]) - 4.0
    expected = np.sum(-4 * d**2 + 0.9 * d**4)
    assert float(bz.DW4.energy(x)) == pytest.approx(expected, rel=1e-5)


def test_egnn_is_equivariant():
    proc = VP()
    params, cfg = bz.init_model(jax.random.PRNGKey(0), "egnn", bz.LJ13, proc, 0.7, hidden=16, depth=2)
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(1), a.shape), params)
    y = jax.random.normal(jax.random.PRNGKey(2), (36,))
    f = jax.jit(lambda z: bz.egnn_apply(params, cfg, z, 0.3, proc))
    x = bz.from_internal(y, 13, 3)
    perm = jax.random.permutation(jax.random.PRNGKey(4), 13)
    q = bz.random_orthogonal(jax.random.PRNGKey(5), 3)
    out = f(bz.to_internal(x[perm] @ q.T, 13, 3))
    ref = bz.to_internal(bz.from_internal(f(y), 13, 3)[perm] @ q.T, 13, 3)
    assert float(jnp.max(jnp.abs(out - ref))) < 1e-4 * (1 + float(jnp.max(jnp.abs(ref))))


def _harmonic_anneal(weighted: bool, seed: int):
    """Harmonic cluster E = (k/2) sum_i |x_i - xbar|^2 of 3 particles in 2-D (d = 4 internal
    coordinates): at temperature T the internal coordinates are N(0, T/k I). With k = T_train = 2
    the noised law is N(0, I) at every t, so its score -y is exact; beta = 2 targets N(0, I/2)."""
    k, t_train, beta = 2.0, 2.0, 2.0
    v = t_train / k
    proc = VP()

    def score(y, t):
        return -y / (proc.alpha(t) ** 2 * v + proc.sigma(t) ** 2)

    # the classic reverse SDE (eta = g) with adaptive systematic resampling, as in benchmarks/boltzmann.py
    res = fkc.anneal(jax.random.PRNGKey(seed), proc, score, beta, 8192, 400, shape=(4,), weighted=weighted, eta=1.0,
                     resampling="systematic", ess_threshold=0.5)
    return res, proc, v, beta


def test_fkc_anneals_an_exact_harmonic_score_to_the_lower_temperature():
    d = 4
    vars_, logzs = [], []
    for seed in range(2):
        res, proc, v, beta = _harmonic_anneal(True, seed)
        w = np.asarray(res.weights, np.float64)
        y = np.asarray(res.particles, np.float64)
        vars_.append(np.sum(w[:, None] * y**2) / d)
        logzs.append(float(res.log_evidence))
    s2 = float(proc.alpha(proc.t_min) ** 2 * v + proc.sigma(proc.t_min) ** 2)
    exact_var = s2 / beta  # N(0, s2)^beta normalised: N(0, s2 / beta), the T = 1 law
    exact_logz = d / 2 * (1 - beta) * math.log(2 * math.pi * s2) - d / 2 * math.log(beta)  # log ∫ N(0, s2)^beta
    # variance: ESS ~ 4000 per run in 4-D gives ~1% Monte Carlo error; Euler bias ~1-2% at 400 steps
    assert np.mean(vars_) == pytest.approx(exact_var, rel=0.05)
    # log Z-hat: measured Euler bias ~ +0.5 and seed sd ~ 0.3 at N = 16384 (both shrink with more
    # steps); dropping the div f term would be off by (beta - 1) d/2 ∫beta ≈ 20
    assert np.mean(logzs) == pytest.approx(exact_logz, abs=1.0)
    # the unweighted scaled-score SDE does not reach the lower-temperature law (its variance -> 1/3)
    res_u, *_ = _harmonic_anneal(False, 0)
    var_u = float(np.mean(np.asarray(res_u.particles, np.float64) ** 2))
    assert abs(var_u / exact_var - 1) > 0.2 and abs(var_u / exact_var - 1) > 4 * abs(np.mean(vars_) / exact_var - 1)


def test_saved_models_round_trip(tmp_path):
    proc = VP()
    data = np.asarray(bz.to_internal(icosahedron(1.0)[None] + 0.05 * np.random.default_rng(0).standard_normal((64, 13, 3)), 13, 3))
    y = jnp.asarray(data[0])
    for arch, kw in (("egnn", {"hidden": 8, "depth": 1}), ("mlp", {"hidden": 16, "depth": 1})):
        if arch == "mlp":  # a few DSM steps with augmentation (the EGNN is only initialised: faster)
            model, losses = bz.train_score(jax.random.PRNGKey(0), data, bz.LJ13, proc, 3, arch=arch, batch_size=8,
                                           chunk_size=3, **kw)
            assert losses.shape == (3,) and np.all(np.isfinite(losses))
        else:
            params, cfg = bz.init_model(jax.random.PRNGKey(0), arch, bz.LJ13, proc, 0.7, **kw)
            params = jax.tree.map(lambda a: a + 0.05, params)
            model = bz.ScoreModel(arch, params, cfg, proc, bz.LJ13, 2.0)
        bz.save_model(tmp_path / arch, model)
        loaded = bz.load_model(tmp_path / f"{arch}.json")
        assert loaded.arch == arch and loaded.system == bz.LJ13 and loaded.temperature == 2.0
        a, b = bz.score_fn(model)(y, 0.2), bz.score_fn(loaded)(y, 0.2)
        assert np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # a corrupted file is refused with the argument named
    (tmp_path / "bad.json").write_text(json.dumps({"format": "probkit.egnn", "version": 99}))
    with pytest.raises(ValueError, match="`path`"):
        bz.load_model(tmp_path / "bad")
    with pytest.raises(ValueError, match="`path`"):
        bz.load_model(tmp_path / "missing")


def test_pretrained_model_and_reference_data():
    model = bz.load_pretrained()
    assert model.arch in ("mlp", "egnn") and model.temperature == 2.0 and model.system == bz.LJ13
    s = bz.score_fn(model)(jnp.zeros(36) + 0.1, 0.5)
    assert s.shape == (36,) and bool(jnp.all(jnp.isfinite(s)))
    for temp in (2.0, 1.5, 1.0):
        path = ROOT / "benchmarks" / "data" / f"lj13_T{temp:.1f}.npz"
        assert path.stat().st_size < 2 * 2**20
        with np.load(path, allow_pickle=False) as f:
            x, e = f["positions"], f["energies"]
        assert x.dtype == np.float32 and x.shape[1] == 39 and len(x) >= 4096
        # stored energies came from the GPU chains, whose coordinate maps then ran in TF32: |diff| ~ 0.01
        diff = np.asarray(bz.LJ13.energy(x[:512])) - e[:512]
        assert np.max(np.abs(diff)) < 0.3 and abs(np.mean(diff)) < 0.02
        assert np.allclose(x.reshape(-1, 13, 3).mean(1), 0, atol=1e-5)  # centre of mass removed
    with pytest.raises(ValueError, match="`name`"):
        bz.load_pretrained("nope")


def _reference(temp: float) -> np.ndarray:
    with np.load(ROOT / "benchmarks" / "data" / f"lj13_T{temp:.1f}.npz", allow_pickle=False) as f:
        return np.asarray(f["positions"], np.float64)


def test_mcmc_refine_keeps_the_target_and_relaxes_towards_it():
    """exp(-E/T) is invariant: T = 1.5 reference configurations refined at T = 1.5 keep their mean
    energy (paired difference within 4 standard errors; refining at T = 2 would raise it by ~9),
    T = 2 configurations refined at T = 1.5 cool down, and one-hot weights start every chain from
    the one configuration."""
    def energy(y):
        return np.asarray(bz.LJ13.energy(bz.from_internal(y, 13, 3)), np.float64)

    y15 = bz.to_internal(jnp.asarray(_reference(1.5)[::32][:256], jnp.float32), 13, 3)
    r = bz.mcmc_refine(jax.random.PRNGKey(0), bz.LJ13, 1.5, y15, 200)
    diff = energy(r.samples[:, -1]) - energy(y15)
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff)), (diff.mean(), diff.std())
    y2 = bz.to_internal(jnp.asarray(_reference(2.0)[::32][:256], jnp.float32), 13, 3)
    cool = energy(bz.mcmc_refine(jax.random.PRNGKey(1), bz.LJ13, 1.5, y2, 200).samples[:, -1]) - energy(y2)
    assert cool.mean() < -10 * cool.std() / np.sqrt(len(cool))
    lw = jnp.full(256, -jnp.inf).at[7].set(0.0)
    one = bz.mcmc_refine(jax.random.PRNGKey(2), bz.LJ13, 1.5, y2, 2, log_weights=lw, step_size=1e-6)
    start = np.asarray(one.samples[:, 0])  # every chain: y2[7] after two tiny MALA steps
    assert np.abs(start.mean(0) - np.asarray(y2[7])).max() < 5e-3 and start.std(0).max() < 0.02 < float(y2.std(0).min())


def test_mcmc_refine_bad_inputs_name_the_argument():
    y = jnp.zeros((4, 36)) + 0.1 * jnp.arange(36.0)
    for kwargs, name in [(dict(samples=y[:, :5]), "samples"), (dict(samples=y.at[0, 0].set(jnp.nan)), "samples"),
                         (dict(log_weights=jnp.full(4, -jnp.inf)), "log_weights"),
                         (dict(log_weights=jnp.zeros(3)), "log_weights"), (dict(num_steps=1), "num_steps")]:
        args = dict(samples=y, num_steps=4) | kwargs
        with pytest.raises(ValueError, match=f"`{name}`"):
            bz.mcmc_refine(jax.random.PRNGKey(0), bz.LJ13, 1.5, **args)


def test_bad_inputs_raise_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="`x`.*atoms"):
        bz.LJ13.energy(np.zeros((12, 3)))
    with pytest.raises(ValueError, match="`x`"):
        bz.LJ13.energy(np.zeros(38))
    x = icosahedron(1.0)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="`x`.*non-finite"):
        bz.LJ13.energy(x)
    with pytest.raises(ValueError, match="`x`.*non-finite"):
        bz.LJ13.force(np.where(np.isnan(x), np.inf, x))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`temperature`"):
            bz.LJ13.log_prob(icosahedron(1.0), bad)
    with pytest.raises(ValueError, match="`temperature`"):
        bz.mcmc_sample(jax.random.PRNGKey(0), bz.LJ13, 0.0, 2, 1)
    with pytest.raises(ValueError, match="`y`"):
        bz.from_internal(np.zeros(35), 13, 3)
    with pytest.raises(ValueError, match="`data`"):
        bz.train_score(jax.random.PRNGKey(0), np.zeros((4, 39)), bz.LJ13, VP(), 1)
    with pytest.raises(ValueError, match="`soft_core`"):
        bz.LennardJones(soft_core=1.5)
    with pytest.raises(ValueError, match="`arch`"):
        bz.init_model(jax.random.PRNGKey(0), "cnn", bz.LJ13, VP(), 1.0)
