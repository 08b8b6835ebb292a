"""Property-based tests (hypothesis) of the Feynman-Kac engine's invariants (probkit.smc).

For arbitrary log-potentials (finite, spread up to 1e3, some particles of zero weight) and
every resampling scheme:

* after a step the log-weights are normalised (logsumexp = 0) and the ESS lies in [1, N];
* resampling leaves the weighted mean unbiased: the mean of the resampled particles, averaged
  over many resampling keys, equals the weighted mean before resampling within Monte Carlo
  error (tolerance from the replicates' own spread);
* with constant potentials c_k (and any G_0), the log-evidence is exact:
  log Z = log mean_i G_0(x_i) + sum_k c_k, whatever the transitions and resampling do.

Shapes are fixed (N = 64) and the random values enter the jitted functions as traced arrays,
so each property compiles once.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from probkit.smc import RESAMPLING, FeynmanKacModel, SMCConfig, SMCState, smc_init, smc_step

N = 64
SETTINGS = settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

# log-potentials: finite values of any sign and spread, with a few -inf (zero-weight particles)
finite_lg = st.floats(-500.0, 500.0, allow_nan=False, allow_infinity=False, width=32)
log_g_arrays = hnp.arrays(np.float32, (N,), elements=st.one_of(finite_lg, finite_lg, finite_lg, st.just(-np.inf))).filter(
    lambda a: np.isfinite(a).any())


def _carry_model() -> FeynmanKacModel:
    """Particles (x, log_g, dead): the transition keeps them; the potential is the carried log_g,
    or -inf where ``dead`` (a particle holding -inf in a leaf would be flagged non-finite)."""
    return FeynmanKacModel(
        init=lambda key: (jax.random.normal(key, (2,)), jnp.zeros(()), jnp.zeros((), bool)),
        transition=lambda key, t, t_next, p: p,
        log_potential=lambda t, t_next, prev, new: jnp.where(new[2], -jnp.inf, new[1]),
    )


_MODEL = _carry_model()


def _step_fn(resampling: str, ess_threshold: float):
    config = SMCConfig(resampling=resampling, ess_threshold=ess_threshold)

    @jax.jit
    def step(key, x, log_w, log_g):
        dead = log_g == -jnp.inf
        state = SMCState((x, jnp.where(dead, 0.0, log_g), dead), log_w, jnp.zeros(()))
        new, info = smc_step(key, state, jnp.asarray(1.0), jnp.asarray(0.5), _MODEL, config)
        return new, info

    return step


_CASES = [("systematic", 0.5), ("residual", 1.0)]  # adaptive, and always resampling
_STEPS = {case: _step_fn(*case) for case in _CASES + [(r, 1.0) for r in RESAMPLING]}


@SETTINGS
@given(log_g=log_g_arrays, case=st.sampled_from(_CASES), seed=st.integers(0, 2**31 - 1))
def test_weights_normalised_and_ess_in_range(log_g, case, seed):
    resampling, threshold = case
    key = jax.random.PRNGKey(seed)
    x = jax.random.normal(key, (N, 2))
    log_w = jnp.full((N,), -math.log(N))
    new, info = _STEPS[(resampling, threshold)](key, x, log_w, jnp.asarray(log_g))
    lw = np.asarray(new.log_weights, np.float64)
    assert abs(np.logaddexp.reduce(lw)) < 1e-4
    ess = float(info.ess)
    n_alive = int(np.isfinite(log_g).sum())
    assert 1.0 - 1e-4 <= ess <= n_alive * (1 + 1e-4), (ess, n_alive)
    assert not bool(info.nonfinite) and not bool(info.all_zero)
    if threshold == 1.0:
        assert bool(info.resampled)
        np.testing.assert_allclose(lw, -math.log(N), rtol=1e-6)


def _resampled_means(resampling: str, reps: int):
    step = _STEPS[(resampling, 1.0)]

    @jax.jit
    def means(keys, x, log_g):
        def one(k):
            new, _ = step(k, x, jnp.full((N,), -math.log(N)), log_g)
            return jnp.mean(new.particles[0], axis=0)

        return jax.vmap(one)(keys)

    return means


_MEANS = {r: _resampled_means(r, 400) for r in RESAMPLING}

moderate_lg = hnp.arrays(np.float32, (N,), elements=st.floats(-6.0, 6.0, width=32))


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(log_g=moderate_lg, resampling=st.sampled_from(RESAMPLING), seed=st.integers(0, 2**31 - 1))
def test_resampling_leaves_weighted_mean_unbiased(log_g, resampling, seed):
    # E[mean of resampled particles] = sum_i W_i x_i for every scheme. 400 resampling keys;
    # the tolerance is 5 standard errors of their average (measured from the replicates) plus
    # float32 rounding. A scheme that drew ancestors with the wrong weights (e.g. uniform, or
    # W^2) is off by many standard errors for these spreads of log-weights.
    reps = 400
    key = jax.random.PRNGKey(seed)
    x = jax.random.normal(key, (N, 2)) * 3.0
    w = np.exp(log_g - np.logaddexp.reduce(log_g.astype(np.float64)))
    target = w @ np.asarray(x, np.float64)
    m = np.asarray(_MEANS[resampling](jax.random.split(jax.random.PRNGKey(seed + 1), reps), x, jnp.asarray(log_g)), np.float64)
    se = m.std(axis=0, ddof=1) / math.sqrt(reps)
    err = np.abs(m.mean(axis=0) - target)
    assert np.all(err <= 5 * se + 1e-4), (resampling, err, se)


def _evidence_fn(num_steps: int, ess_threshold: float):
    config = SMCConfig(resampling="systematic", ess_threshold=ess_threshold)
    ts = jnp.arange(num_steps, -1, -1).astype(jnp.float32)  # t_k = K - k, so step k has t = K - k

    @jax.jit
    def run(key, consts, g0_scale):
        model = FeynmanKacModel(
            init=lambda k: jax.random.normal(k, (3,)),
            transition=lambda k, t, t_next, x: x + 0.5 * jax.random.normal(k, x.shape),
            log_potential=lambda t, t_next, prev, new: consts[(num_steps - t).astype(jnp.int32)],
            init_log_weight=lambda x: g0_scale * jnp.sum(x),
        )
        k_init, k_run = jax.random.split(key)
        state0 = smc_init(k_init, model, N, config)
        g0 = jax.vmap(model.init_log_weight)(state0.particles)

        def body(s, inp):
            k, t, t_next = inp
            return smc_step(k, s, t, t_next, model, config)

        state, info = jax.lax.scan(body, state0, (jax.random.split(k_run, num_steps), ts[:-1], ts[1:]))
        return state.log_evidence, g0, info.resampled

    return run


_EVIDENCE = {1.0: _evidence_fn(6, 1.0)}  # resampling at every step: the hardest bookkeeping


@SETTINGS
@given(consts=hnp.arrays(np.float32, (6,), elements=st.floats(-100.0, 100.0, width=32)),
       g0_scale=st.floats(-2.0, 2.0, width=32), threshold=st.just(1.0), seed=st.integers(0, 2**31 - 1))
def test_log_evidence_exact_for_constant_potentials(consts, g0_scale, threshold, seed):
    log_z, g0, resampled = _EVIDENCE[threshold](jax.random.PRNGKey(seed), jnp.asarray(consts), jnp.float32(g0_scale))
    g0 = np.asarray(g0, np.float64)
    exact = np.logaddexp.reduce(g0) - math.log(N) + consts.astype(np.float64).sum()
    scale = 1.0 + np.abs(consts).sum() + np.abs(g0).max()
    assert abs(float(log_z) - exact) <= 2e-6 * scale * 8, (float(log_z), exact)
    assert bool(np.all(resampled)) == (threshold == 1.0)
