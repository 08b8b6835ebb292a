"""probkit.progress: a drop-in lax.scan that reports progress to the host.

Checks: identical results to lax.scan (on, off, jit, grad, reverse); the host callback fires at
exactly the documented steps (every `every` steps and the last); a compiled scan reports again on
every call; nothing is reported under vmap; bad arguments raise ValueError naming the argument.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.progress import progress_scan, report_steps


def body(c, x):
    c = jnp.sin(c) + x
    return c, 2.0 * c


def _run(**kw):
    calls = []
    out = progress_scan(body, 0.5, jnp.arange(10.0), enabled=True, on_update=lambda d, t: calls.append((d, t)), **kw)
    jax.block_until_ready(out)
    jax.effects_barrier()
    return out, calls


def test_same_result_as_scan_and_fires_expected_times():
    ref = jax.lax.scan(body, 0.5, jnp.arange(10.0))
    out, calls = _run(every=3)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-6)
    assert report_steps(10, 3) == [3, 6, 9, 10]
    assert sorted(calls) == [(3, 10), (6, 10), (9, 10), (10, 10)]
    # default: about 20 reports; 10 steps -> every step
    _, calls = _run()
    assert sorted(d for d, _ in calls) == list(range(1, 11))
    # reverse scans count finished steps too
    ref_r = jax.lax.scan(body, 0.5, jnp.arange(10.0), reverse=True)
    out_r, calls = _run(every=5, reverse=True)
    np.testing.assert_allclose(out_r[1], ref_r[1], rtol=1e-6)
    assert sorted(d for d, _ in calls) == [5, 10]


def test_disabled_is_plain_scan_and_silent(capsys):
    calls = []
    out = progress_scan(body, 0.5, jnp.arange(10.0), on_update=lambda d, t: calls.append(d))
    jax.effects_barrier()
    assert calls == []
    assert "scan" not in capsys.readouterr().err
    np.testing.assert_allclose(out[0], jax.lax.scan(body, 0.5, jnp.arange(10.0))[0])


def test_jit_reports_each_call_and_grad_works():
    calls = []

    @jax.jit
    def run(c0):
        return progress_scan(lambda c, _: body(c, 1.0), c0, None, length=8, enabled=True, every=4,
                             on_update=lambda d, t: calls.append(d))[0]

    run(0.1).block_until_ready()
    run(0.2).block_until_ready()
    jax.effects_barrier()
    assert sorted(calls) == [4, 4, 8, 8]
    g = jax.grad(lambda c: progress_scan(body, c, jnp.arange(5.0), enabled=True, on_update=lambda d, t: None)[0])(0.3)
    g_ref = jax.grad(lambda c: jax.lax.scan(body, c, jnp.arange(5.0))[0])(0.3)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)


def test_silent_under_vmap(capsys):
    calls = []

    def run(c0):
        return progress_scan(body, c0, jnp.arange(6.0), enabled=True, every=1, desc="vmapped",
                             on_update=lambda d, t: calls.append(d))

    out = jax.vmap(run)(jnp.linspace(0.0, 1.0, 4))
    out_jit = jax.jit(jax.vmap(jax.jit(run)))(jnp.linspace(0.0, 1.0, 4))
    jax.block_until_ready((out, out_jit))
    jax.effects_barrier()
    assert calls == []
    ref = jax.vmap(lambda c: jax.lax.scan(body, c, jnp.arange(6.0)))(jnp.linspace(0.0, 1.0, 4))
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-6)
    assert "vmapped" not in capsys.readouterr().err


def test_tqdm_bar_on_stderr(capsys):
    out = progress_scan(body, 0.5, jnp.arange(10.0), enabled=True, desc="demo bar", every=5)
    jax.block_until_ready(out)
    jax.effects_barrier()
    err = capsys.readouterr().err
    assert "demo bar" in err and "10/10" in err


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        progress_scan(body, 0.5, jnp.arange(3.0), enabled=True, every=0)
    with pytest.raises(ValueError, match="length"):
        progress_scan(body, 0.5, None, enabled=True)
    with pytest.raises(ValueError, match="length"):
        progress_scan(body, 0.5, jnp.arange(3.0), length=4, enabled=True)


def test_smc_samplers_report_progress_and_stay_silent_under_vmap(capsys):
    """``progress=True`` on an SMC sampler shows a bar (stderr); results are unchanged; under vmap
    nothing is printed."""
    import jax.numpy as jnp

    from probkit import fkc
    from probkit.diffusion import VP
    from probkit.models import GaussianMixture

    proc = VP()
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0]]), jnp.array([[0.5]]))
    score = gm.score_fn(proc)
    run = lambda k, progress: fkc.anneal(k, proc, score, 2.0, 64, 10, shape=(1,), progress=progress)
    quiet = run(jax.random.PRNGKey(0), False)
    capsys.readouterr()
    loud = run(jax.random.PRNGKey(0), True)
    jax.effects_barrier()
    assert "smc" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(quiet.particles), np.asarray(loud.particles))
    jax.vmap(lambda k: run(k, True).log_evidence)(jax.random.split(jax.random.PRNGKey(1), 2))
    jax.effects_barrier()
    assert capsys.readouterr().err == ""


def test_sample_and_training_report_progress(capsys):
    """``probkit.sample(progress=True)`` reports over the steps (same draws as without);
    ``train_score_model(progress=True)`` over the chunks."""
    import jax.numpy as jnp

    import probkit
    from probkit.diffusion import VP
    from probkit.models import GaussianMixture, train_score_model

    proc = VP()
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0]]), jnp.array([[0.5]]))
    quiet = probkit.sample(jax.random.PRNGKey(0), proc, gm.score_fn(proc), (1,), 32, 10)
    capsys.readouterr()
    loud = probkit.sample(jax.random.PRNGKey(0), proc, gm.score_fn(proc), (1,), 32, 10, progress=True)
    jax.effects_barrier()
    assert "sample" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(quiet.samples), np.asarray(loud.samples))
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    train_score_model(jax.random.PRNGKey(0), data, proc, 4, 16, hidden=8, depth=1, chunk_size=2, progress=True)
    assert "train" in capsys.readouterr().err


def test_dlg_reports_progress_with_unchanged_draws(capsys):
    import jax.numpy as jnp

    from probkit import dmcmc
    from probkit.diffusion import VP
    from probkit.models import GaussianMixture

    proc = VP()
    gm = GaussianMixture(jnp.array([1.0]), jnp.array([[1.0]]), jnp.array([[0.5]]))
    kw = dict(logdensity_fn=gm.logdensity_fn(proc), num_chains=4, num_samples=3, burn_in=5, thin=2,
              denoise=dmcmc.Denoise(num_steps=3))
    quiet = dmcmc.dlg(jax.random.PRNGKey(0), proc, gm.score_fn(proc), (1,), **kw)
    capsys.readouterr()
    loud = dmcmc.dlg(jax.random.PRNGKey(0), proc, gm.score_fn(proc), (1,), progress=True, **kw)
    jax.effects_barrier()
    assert "dlg" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(quiet.samples), np.asarray(loud.samples))
