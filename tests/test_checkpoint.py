"""Checkpoint / resume of Feynman-Kac runs (probkit.smc.checkpoint): resumed == uninterrupted, bitwise."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.diffusion import VP
from probkit.fkc import fkc_model
from probkit.models import GaussianMixture
from probkit.smc.checkpoint import read_checkpoint_metadata, run_smc_checkpointed

PROC = VP()
BETA = 2.0
# One 2-D Gaussian N(mu, S): annealed to p^2 it is N(mu, S / 2), an exact target.
MU = np.array([1.0, -0.5])
S = np.array([[0.8, 0.3], [0.3, 0.5]])
GM = GaussianMixture(jnp.ones(1), jnp.asarray(MU)[None], jnp.asarray(S)[None])
MODEL, TARGET = fkc_model(PROC, [GM.score_fn(PROC)], [BETA], (2,), logdensity_fns=[GM.logdensity_fn(PROC)])
TS = jnp.linspace(1.0, 1e-3, 21)
N = 256


class Stop(Exception):
    pass


def _leaves_equal(a, b):
    """Bitwise equality of two pytrees (NaN == NaN: the history's acceptance is NaN without a corrector)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
        return False
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    return True


def _run(path, key=jax.random.PRNGKey(0), **kw):
    args = dict(checkpoint=path, checkpoint_every=10, target=TARGET)
    args.update(kw)
    return run_smc_checkpointed(key, MODEL, N, TS, **args)


def test_resumed_run_equals_uninterrupted_bitwise(tmp_path):
    full = _run(tmp_path / "a" / "full")

    def stop_at_10(done, state):
        if done == 10:
            raise Stop

    with pytest.raises(Stop):
        _run(tmp_path / "b" / "ck", callback=stop_at_10)
    meta = read_checkpoint_metadata(tmp_path / "b" / "ck")
    assert meta["step"] == 10 and meta["num_steps"] == 20
    seen = []
    res = _run(tmp_path / "b" / "ck", callback=lambda d, s: seen.append(d))
    assert seen == [20]
    assert _leaves_equal(res.state, full.state) and _leaves_equal(res.history, full.history)
    assert res.history.ess.shape == (20,)
    # the annealed target N(mu, S / beta): weighted mean within 5 Monte Carlo standard errors
    w = np.exp(np.asarray(res.log_weights))
    ess = 1.0 / np.sum(w**2)
    mean = w @ np.asarray(res.particles.x)
    se = np.sqrt(np.diag(S) / BETA / ess)
    assert np.all(np.abs(mean - MU) < 5 * se + 0.02), (mean, MU, se)
    assert 1.0 <= float(res.ess.min()) and float(res.ess.max()) <= N * (1 + 1e-5)
    # resuming a finished run returns it without running
    again = _run(tmp_path / "b" / "ck", callback=lambda *a: pytest.fail("ran again"))
    assert _leaves_equal(again.state, full.state)


def test_checkpoint_mismatch_and_corruption(tmp_path):
    ck = tmp_path / "ck"
    _run(ck)
    with pytest.raises(ValueError, match="`key` differs"):
        _run(ck, key=jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="`checkpoint_every` differs"):
        _run(ck, checkpoint_every=5)
    with pytest.raises(ValueError, match="`ess_threshold` differs"):
        _run(ck, ess_threshold=0.3)
    with pytest.raises(ValueError, match="`num_particles` differs"):
        run_smc_checkpointed(jax.random.PRNGKey(0), MODEL, 128, TS, checkpoint=ck, checkpoint_every=10)
    other, _ = fkc_model(PROC, [GM.score_fn(PROC)], [3.0], (2,), logdensity_fns=[GM.logdensity_fn(PROC)])
    with pytest.raises(ValueError, match="`model`"):
        run_smc_checkpointed(jax.random.PRNGKey(0), other, N, TS, checkpoint=ck, checkpoint_every=10)
    # both generations corrupt: ValueError naming the file, no pickle advice
    for name in ("ck.npz", "ck.prev.npz"):
        raw = bytearray((tmp_path / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (tmp_path / name).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="ck.npz") as err:
        _run(ck)
    assert "pickle" not in str(err.value)
    (tmp_path / "ck.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_checkpoint_metadata(ck)


def test_nonfinite_step_is_named_and_not_checkpointed(tmp_path):
    def transition(key, t, t_next, p):
        new = MODEL.transition(key, t, t_next, p)
        return new._replace(x=jnp.where(t_next < 0.5, jnp.nan, new.x))

    bad = MODEL._replace(transition=transition)
    k = int(np.flatnonzero(np.asarray(TS[1:]) < 0.5)[0])
    with pytest.raises(ValueError, match=f"non-finite values at step {k} "):
        run_smc_checkpointed(jax.random.PRNGKey(0), bad, N, TS, checkpoint=tmp_path / "ck", checkpoint_every=10)
    assert read_checkpoint_metadata(tmp_path / "ck")["step"] == 10 * (k // 10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(checkpoint_every=0), "checkpoint_every"),
    (dict(num_particles=0), "num_particles"),
    (dict(ts=jnp.linspace(0.0, 1.0, 5)), "ts"),
    (dict(resampling="bogus"), "resampling"),
    (dict(ess_threshold=1.5), "ess_threshold"),
    (dict(key=jnp.zeros(3)), "key"),
    (dict(checkpoint=3), "checkpoint"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(key=jax.random.PRNGKey(0), model=MODEL, num_particles=8, ts=TS, checkpoint=tmp_path / "x", checkpoint_every=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        run_smc_checkpointed(**args)


def test_nan_init_log_weight_is_named(tmp_path):
    bad = MODEL._replace(init_log_weight=lambda p: jnp.nan * p.x[0])
    with pytest.raises(ValueError, match="init_log_weight"):
        run_smc_checkpointed(jax.random.PRNGKey(0), bad, 8, TS, checkpoint=tmp_path / "ck", checkpoint_every=10)
