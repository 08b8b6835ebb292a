"""Compile once, run many: every public sampler reuses its compiled program for new arrays of the
same shapes, runs under jax.vmap (= the loop of single calls, same key -> same draws), and
returns pytree results that pass through jax.jit / jax.vmap; every result shares one core.

The compile counter listens to JAX's backend-compile event, so it counts every XLA compile
(the sampler's program and any eager op) during the second call.
"""
from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial

import probkit
from probkit import dmcmc, fkc, inverse, smc
from probkit.diffusion import VP, time_grid
from probkit.models import GaussianMixture

PROC = VP()
_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *a, **k: _COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
)


def _compiles(fn) -> int:
    before = len(_COMPILES)
    jax.block_until_ready(jax.tree.leaves(fn()))
    return len(_COMPILES) - before


def _mixture(seed: int, d: int = 2) -> GaussianMixture:
    r = np.random.default_rng(seed)
    return GaussianMixture(np.array([0.4, 0.6]), r.normal(size=(2, d)), 0.2 + r.uniform(size=(2, d)))


def _lik(seed: int, op):
    y = np.random.default_rng(100 + seed).normal(size=op.out_shape)
    return inverse.gaussian(op, y, 0.5)


_OP = inverse.dense(np.random.default_rng(0).normal(size=(1, 2)))
N, K = 32, 4


def _call(name: str, seed: int, op=_OP):
    gm, gm2 = _mixture(seed), _mixture(seed + 50)
    sf, lp, key = gm.score_fn(PROC), gm.logdensity_fn(PROC), jax.random.PRNGKey(seed)
    if name == "anneal":
        return fkc.anneal(key, PROC, sf, 1.5 + seed, N, K, shape=(2,))
    if name == "anneal_mala":
        return fkc.anneal(key, PROC, sf, np.float32(2.0 + seed), N, K, shape=(2,), logdensity_fn=lp,
                          corrector=smc.mala(0.01 * (seed + 1)))
    if name == "product":
        return fkc.product(key, PROC, [sf, gm2.score_fn(PROC)], N, K, shape=(2,))
    if name == "geometric":
        return fkc.geometric(key, PROC, [sf, gm2.score_fn(PROC)], [0.5 + seed, 0.7], N, K, shape=(2,))
    if name == "cfg":
        return fkc.cfg(key, PROC, sf, gm2.score_fn(PROC), jnp.asarray(1.5 + seed), N, K, shape=(2,))
    if name == "ensemble":
        return inverse.ensemble(key, PROC, sf, _lik(seed, op), N, K)
    if name == "ensemble_tempered":
        return inverse.ensemble(key, PROC, sf, _lik(seed, op), N, K, likelihood_path="tempered", logdensity_fn=lp)
    if name == "dps":
        return inverse.dps(key, PROC, sf, _lik(seed, op), N, K, step_size=0.5 + seed)
    if name == "twisted_smc":
        return inverse.twisted_smc(key, PROC, sf, _lik(seed, op), N, K)
    if name == "dlg":
        return dmcmc.dlg(key, PROC, sf, (2,), logdensity_fn=lp, num_chains=4, num_samples=2, burn_in=2,
                         t_move=dmcmc.NoiseGrid(num_levels=8), denoise=dmcmc.Denoise(num_steps=2),
                         x_move=smc.mala(dmcmc.noise_scaled_step(PROC, 0.3 + 0.1 * seed)))
    if name == "sample":
        return probkit.sample(key, PROC, sf, (2,), N, K)
    raise AssertionError(name)


SAMPLERS = ["anneal", "anneal_mala", "product", "geometric", "cfg", "ensemble", "ensemble_tempered", "dps",
            "twisted_smc", "dlg", "sample"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_second_call_with_new_arrays_does_not_compile(name):
    _call(name, 0)
    assert _compiles(lambda: _call(name, 1)) == 0


def test_new_operator_matrix_of_the_same_shape_does_not_compile():
    _call("ensemble", 0)
    op2 = inverse.dense(np.random.default_rng(7).normal(size=(1, 2)))
    assert _compiles(lambda: _call("ensemble", 1, op2)) == 0


def test_run_smc_reuses_its_program_for_one_model():
    gm = _mixture(0)
    model, target = fkc.fkc_model(PROC, (gm.score_fn(PROC),), (2.0,), (2,))
    run_smc = smc.run_smc
    run_smc(jax.random.PRNGKey(0), model, N, time_grid(PROC, K), target=target)
    assert _compiles(lambda: run_smc(jax.random.PRNGKey(1), model, N, time_grid(PROC, K, t_min=0.01), target=target)) == 0
    # a model of Partials built again from new arrays of the same shapes: no compile either
    model2 = smc.FeynmanKacModel(Partial(_init), Partial(_transition, jnp.asarray(0.9)), Partial(_potential))
    run_smc(jax.random.PRNGKey(0), model2, N, time_grid(PROC, K))
    model3 = smc.FeynmanKacModel(Partial(_init), Partial(_transition, jnp.asarray(0.5)), Partial(_potential))
    assert _compiles(lambda: run_smc(jax.random.PRNGKey(1), model3, N, time_grid(PROC, K))) == 0


def _init(key):
    return jax.random.normal(key, (2,))


def _transition(rho, key, t, t_next, x):
    return rho * x + jax.random.normal(key, x.shape)


def _potential(t, t_next, x_prev, x_new):
    return -0.5 * jnp.sum(x_new**2) * (t - t_next)


# ------------------------------------------------------------------------------------------------
# vmap = loop of single calls
def _assert_same(batched, singles):
    for i, one in enumerate(singles):
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one)):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-4, atol=1e-5)


KEYS = jax.random.split(jax.random.PRNGKey(3), 3)


@pytest.mark.parametrize("name", ["anneal", "dlg", "sample", "dps"])
def test_vmap_over_keys_equals_loop(name):
    gm = _mixture(0)
    sf, lp = gm.score_fn(PROC), gm.logdensity_fn(PROC)
    fns = {
        "anneal": lambda k: fkc.anneal(k, PROC, sf, 2.0, N, K, shape=(2,)),
        "dlg": lambda k: dmcmc.dlg(k, PROC, sf, (2,), logdensity_fn=lp, num_chains=4, num_samples=2, burn_in=2,
                                   t_move=dmcmc.NoiseGrid(num_levels=8), denoise=dmcmc.Denoise(num_steps=2)),
        "sample": lambda k: probkit.sample(k, PROC, sf, (2,), N, K),
        "dps": lambda k: inverse.dps(k, PROC, sf, _lik(0, _OP), N, K),
    }
    fn = fns[name]
    batched = jax.vmap(fn)(KEYS)
    assert type(batched) is type(fn(KEYS[0])) and batched.nfe == fn(KEYS[0]).nfe
    _assert_same(batched, [fn(k) for k in KEYS])


def test_vmap_over_observations_equals_loop():
    gm = _mixture(0)
    sf = gm.score_fn(PROC)
    ys = jnp.asarray(np.random.default_rng(1).normal(size=(3, 1)))
    fn = lambda y: inverse.ensemble(KEYS[0], PROC, sf, inverse.gaussian(_OP, y, 0.5), N, K)  # noqa: E731
    _assert_same(jax.vmap(fn)(ys), [fn(y) for y in ys])


def test_vmap_over_guidance_weights_equals_loop():
    a, b = _mixture(0), _mixture(1)
    ws = jnp.array([0.5, 2.0, 3.0])
    fn = lambda w: fkc.cfg(KEYS[0], PROC, a.score_fn(PROC), b.score_fn(PROC), w, N, K, shape=(2,))  # noqa: E731
    _assert_same(jax.vmap(fn)(ws), [fn(w) for w in ws])


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_inside_a_user_jit(name):
    """Called inside the user's ``jax.jit`` (nested jit: no host syncs, no compiler options), the
    sampler gives the draws of the plain call."""
    inner = jax.jit(lambda: _call(name, 0))()
    outer = _call(name, 0)
    assert type(inner) is type(outer) and inner.nfe == outer.nfe
    np.testing.assert_allclose(np.asarray(inner.particles), np.asarray(outer.particles), rtol=1e-4, atol=1e-4)


def test_results_pass_through_jit_and_share_the_core():
    for name in ("anneal", "ensemble", "twisted_smc", "dlg", "sample"):
        out = _call(name, 0)
        for field in ("particles", "log_weights", "nfe"):
            assert hasattr(out, field), (name, field)
        assert isinstance(out.nfe, (int, float)) and out.log_weights.shape == (out.particles.shape[0],)
        assert out.resample(jax.random.PRNGKey(0), 5).shape == (5, 2)
        assert "posterior" in out.to_inference_data().groups()
        assert repr(out).startswith(type(out).__name__)
        jitted = jax.jit(lambda o: o)(out)
        assert type(jitted) is type(out) and jitted.nfe == out.nfe


def test_any_blackjax_kernel_as_corrector_nuts():
    gm = _mixture(0)
    nuts = smc.from_blackjax(blackjax.nuts, step_size=0.05, inverse_mass_matrix=jnp.ones(2), nfe=8)
    out = fkc.anneal(jax.random.PRNGKey(0), PROC, gm.score_fn(PROC), 1.0, 64, 4, shape=(2,),
                     logdensity_fn=gm.logdensity_fn(PROC), corrector=nuts, ess_threshold=1.0)
    assert out.corrector == "nuts" and out.nfe == 4 * (1 + 8)
    acc = np.asarray(out.acceptance)
    assert np.all((acc > 0.2) & (acc <= 1.0))


def test_import_direction():
    """Lower layers never import higher ones (docs/architecture.md)."""
    import pathlib

    root = pathlib.Path(probkit.__file__).parent
    forbidden = {"diffusion": ("probkit.smc", "probkit.fkc", "probkit.inverse", "probkit.dmcmc"),
                 "diagnostics": ("probkit.smc", "probkit.fkc", "probkit.inverse", "probkit.dmcmc"),
                 "smc": ("probkit.fkc", "probkit.inverse", "probkit.dmcmc", "probkit.diagnostics")}
    for layer, names in forbidden.items():
        for path in (root / layer).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            for name in names:
                assert f"from {name}" not in text and f"import {name}" not in text, (path.name, name)


def test_sampler_programs_compile_with_probkit_options():
    """Every sampler entry point jits through probkit._jit, which compiles programs holding a
    closed-form mixture without Triton GEMM autotuning (the d = 800 compile, docs/compile.md) and
    all others with JAX's defaults; the options reach XLA (a CPU compile accepts them)."""
    import pathlib

    from probkit import _jit

    root = pathlib.Path(probkit.__file__).parent
    for layer in ("smc", "fkc", "inverse", "dmcmc", "diffusion"):
        for path in (root / layer).glob("*.py"):
            assert "eqx.filter_jit" not in path.read_text(encoding="utf-8"), path.name
    gm = _mixture(0)
    assert _jit.wants_fast_compile((gm.score_fn(PROC),)) and _jit.wants_fast_compile({"a": [1, gm.logdensity_fn(PROC)]})
    assert not _jit.wants_fast_compile((Partial(lambda x, t: -x), jnp.ones(2)))
    assert _jit.FAST_COMPILE_OPTIONS == {"xla_gpu_enable_triton_gemm": False}
    f = _jit.filter_jit(lambda a, sf: sf(a, 0.5) @ a)
    assert np.isfinite(float(f(jnp.ones(2), gm.score_fn(PROC))))  # the fast variant compiles and runs
