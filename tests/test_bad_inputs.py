"""Bad inputs at the public boundary (issue 16): each gets a clear error naming the argument.

Every row of issue 16's table has a test here (loaders, the CLI, training checkpoints,
conditioning on operators, NumPy scalars, and the samplers' rows: non-finite flags, degenerate-run
warnings, event shapes, PRNG keys); the rows that run a whole sampler are marked ``slow``.
"""
import hashlib
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import probkit
from probkit.cli import main
from probkit.diffusion import VP
from probkit.models import GaussianMixture
from probkit.models.nets import init_score_mlp, load_score_model, save_score_model, train_score_model

PROC = VP()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Rows that run a whole sampler (2-4 s of compilation each) are also marked slow, to keep the
# default suite fast: run them with `pytest -m slow tests/test_bad_inputs.py`.
SLOW = pytest.mark.slow
GM2 = GaussianMixture(jnp.array([0.5, 0.5]), jnp.array([[-1.0, 0.0], [1.0, 0.5]]), jnp.full((2, 2), 0.3))
FUZZ = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ESTIMATE = ["privacy", "estimate", "--negatives", "100", "--fn", "3", "--positives", "100"]


# ============================================================================ loaders
@pytest.fixture
def model_file(tmp_path):
    params, cfg = init_score_mlp(jax.random.PRNGKey(0), 3, hidden=8, depth=1)
    save_score_model(tmp_path / "m", params, cfg, PROC)
    return tmp_path / "m"


def _assert_clean_path_error(err, base):
    msg = str(err.value)
    assert str(base) in msg and "`path`" in msg, msg
    assert "allow_pickle" not in msg and "\n" not in msg, msg


def test_row_load_score_model_flipped_and_random_bytes(model_file):
    npz = model_file.parent / "m.npz"
    good = npz.read_bytes()
    raw = bytearray(good)
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as err:  # was zipfile.BadZipFile
        load_score_model(model_file)
    _assert_clean_path_error(err, model_file)
    npz.write_bytes(os.urandom(len(good)))
    with pytest.raises(ValueError) as err:  # was numpy's advice to pass allow_pickle=True
        load_score_model(model_file)
    _assert_clean_path_error(err, model_file)


@pytest.mark.parametrize("path", [None, 3, ["m"]])
def test_load_score_model_bad_path_type(path):
    with pytest.raises(ValueError, match="`path`"):
        load_score_model(path)


def test_load_score_model_path_is_a_folder(tmp_path):
    (tmp_path / "m.json").mkdir()
    with pytest.raises(ValueError, match="is not a file"):
        load_score_model(tmp_path / "m")


@FUZZ
@given(data=st.binary(min_size=0, max_size=600), where=st.sampled_from(["npz", "json", "npz_digest_ok"]))
def test_fuzz_loader_any_bytes_give_value_error(tmp_path_factory, data, where):
    # Any byte string as the .npz (with or without a matching digest) or as the .json: the
    # loader raises ValueError naming the file (never BadZipFile, EOFError, UnicodeError,
    # RecursionError, KeyError or pickle advice) or, by extreme luck, loads a valid model.
    base = tmp_path_factory.mktemp("fuzz") / "m"
    params, cfg = init_score_mlp(jax.random.PRNGKey(0), 2, hidden=4, depth=1, embed_dim=2, time_dim=4)
    save_score_model(base, params, cfg, PROC)
    npz, js = base.parent / "m.npz", base.parent / "m.json"
    if where == "json":
        js.write_bytes(data)
    else:
        npz.write_bytes(data)
        if where == "npz_digest_ok":
            meta = json.loads(js.read_text())
            meta["npz_sha256"] = hashlib.sha256(data).hexdigest()
            js.write_text(json.dumps(meta))
    with pytest.raises(ValueError) as err:
        load_score_model(base)
    _assert_clean_path_error(err, base)


@pytest.mark.parametrize("loader, name", [
    ("probkit.models.conditional:load_conditional_score_model", "digits_cond_vp"),
    ("probkit.models.conditional:load_classifier", "digits_classifier"),
    ("probkit.models.boltzmann:load_model", "lj13_T2"),
])
@pytest.mark.parametrize("how", ["flip", "random", "bad_json"])
def test_other_loaders_corrupt_files(tmp_path, loader, name, how):
    # The other npz + json loaders of probkit.models share the same safe reader.
    import importlib
    import shutil

    module, fn = loader.split(":")
    load = getattr(importlib.import_module(module), fn)
    src = os.path.join(ROOT, "probkit", "models", "pretrained", name)
    for ext in (".npz", ".json"):
        shutil.copy(src + ext, tmp_path / (name + ext))
    base = tmp_path / name
    npz = tmp_path / (name + ".npz")
    raw = bytearray(npz.read_bytes())
    if how == "flip":
        for i in range(len(raw) // 2, len(raw) // 2 + 8):
            raw[i] ^= 0xFF
        npz.write_bytes(bytes(raw))
    elif how == "random":
        npz.write_bytes(os.urandom(len(raw)))
    else:
        (tmp_path / (name + ".json")).write_text("{oops")
    with pytest.raises(ValueError) as err:
        load(base)
    _assert_clean_path_error(err, base)


# ============================================================================ training
@pytest.mark.parametrize("name, bad", [
    (name, bad)
    for name, bads in {
        "num_steps": [0, -1, 1.5, True, "3", None],
        "batch_size": [0, -4, 2.0, False, "8"],
        "chunk_size": [0, -1, 1.5],
        "learning_rate": [0.0, -1e-3, np.nan, np.inf, "fast", None, [1e-3], np.array([1e-3, 2e-3])],
        "grad_clip": [0.0, -1.0, np.nan, "x"],
        "ema_decay": [1.0, -0.1, np.nan, "0.9", None],
        "weight_decay": [-1.0, np.nan, np.inf, "0"],
        "t_min": [0.0, 1.0, -0.5, np.nan, "small"],
        "warmup_steps": [-1, 1.5, "10"],
        "checkpoint_every": [5],  # without `checkpoint`
        "hidden": [0, 2.5],
        "embed_dim": [7, 0],
        "data_std": [0.0, -1.0, np.nan, "one"],
        "time_input": ["sigma"],
        "callback": [3],
        "init": ["weights", (1, 2, 3)],
    }.items()
    for bad in bads
])
def test_train_score_model_names_each_bad_argument(name, bad):
    kwargs = dict(num_steps=2, batch_size=4, hidden=4, depth=1)
    kwargs[name] = bad
    num_steps, batch_size = kwargs.pop("num_steps"), kwargs.pop("batch_size")
    with pytest.raises(ValueError, match=f"`{name}`"):
        train_score_model(jax.random.PRNGKey(0), np.zeros((8, 2)), PROC, num_steps, batch_size, **kwargs)


@pytest.mark.parametrize("data", [np.zeros(5), np.zeros((0, 2)), np.full((4, 2), np.nan), np.array([["a", "b"]]),
                                  np.zeros((4, 2), complex), [[1.0, 2.0], [3.0]]])
def test_train_score_model_bad_data(data):
    with pytest.raises(ValueError, match="`data`"):
        train_score_model(jax.random.PRNGKey(0), data, PROC, 2, 4, hidden=4, depth=1)


def test_train_score_model_bad_key_and_process():
    with pytest.raises(ValueError, match="`process`"):
        train_score_model(jax.random.PRNGKey(0), np.zeros((8, 2)), "VP", 2, 4)
    with pytest.raises(ValueError, match="`key`"):
        train_score_model(jnp.zeros(3), np.zeros((8, 2)), PROC, 2, 4, hidden=4, depth=1)
    with pytest.raises(ValueError, match="`key`"):
        train_score_model("seed", np.zeros((8, 2)), PROC, 2, 4, hidden=4, depth=1)


def test_numpy_and_jax_scalars_accepted_by_training_and_mixtures():
    # NumPy / JAX scalars wherever Python numbers are accepted (a table row, in this scope), and
    # they change nothing: the same run as with Python numbers, bitwise.
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    small = dict(hidden=8, depth=1, embed_dim=4, time_dim=8)  # the settings of tests/test_nets.py (one compile)
    res = train_score_model(jax.random.PRNGKey(3), data, PROC, np.int64(20), np.int32(8), chunk_size=np.int64(5),
                            hidden=np.int64(8), depth=np.int32(1), embed_dim=np.int64(4), time_dim=np.int64(8),
                            learning_rate=np.float64(2e-3), ema_decay=np.float64(0.999), t_min=np.float64(1e-3),
                            grad_clip=jnp.float32(1.0), weight_decay=np.float32(0.0))
    ref = train_score_model(jax.random.PRNGKey(3), data, PROC, 20, 8, chunk_size=5, **small)
    assert np.array_equal(np.asarray(res.losses), np.asarray(ref.losses))
    assert GM2.sample(jax.random.PRNGKey(0), np.int64(5)).shape == (5, 2)
    post = GM2.condition(np.eye(2)[:1], jnp.array([0.3]), np.float32(0.5))
    post2 = GM2.condition(np.eye(2)[:1], jnp.array([0.3]), jnp.asarray(0.5))
    np.testing.assert_allclose(post.means, post2.means)


def test_save_score_model_bad_metadata(tmp_path):
    params, cfg = init_score_mlp(jax.random.PRNGKey(0), 2, hidden=4, depth=1)
    with pytest.raises(ValueError, match="`metadata`"):
        save_score_model(tmp_path / "m", params, cfg, PROC, metadata={"f": object()})
    with pytest.raises(ValueError, match="`metadata`"):
        save_score_model(tmp_path / "m", params, cfg, PROC, metadata=[1, 2])


# ============================================================================ conditioning
def test_row_condition_with_operator():
    from probkit.inverse import operators

    gm = GaussianMixture(jnp.ones(1), jnp.zeros((1, 4)), jnp.ones((1, 4)))
    op = operators.mask(np.array([[True, False], [False, True]]))
    post = gm.condition(op, jnp.array([1.0, -1.0]), 0.5)  # was an opaque TypeError
    np.testing.assert_allclose(post.means[0], [0.8, 0.0, 0.0, -0.8], rtol=1e-5)  # 1 / (1 + 0.25) per observed entry
    with pytest.raises(ValueError, match="`A`"):
        gm.condition(operators.mask(np.ones(3, bool)), jnp.zeros(3), 0.5)


@pytest.mark.parametrize("A, y, noise, name", [
    (np.ones((1, 3)), np.ones(1), 0.1, "A"),
    (np.ones(2), np.ones(1), 0.1, "A"),
    ({"a": 1}, np.ones(1), 0.1, "A"),
    (np.full((1, 2), np.inf), np.ones(1), 0.1, "A"),
    (np.ones((1, 2)), np.ones(2), 0.1, "y"),
    (np.ones((1, 2)), np.array([np.nan]), 0.1, "y"),
    (np.ones((1, 2)), "y", 0.1, "y"),
    (np.ones((1, 2)), np.ones(1), 0.0, "noise_std"),
    (np.ones((1, 2)), np.ones(1), -1.0, "noise_std"),
    (np.ones((1, 2)), np.ones(1), np.nan, "noise_std"),
    (np.ones((1, 2)), np.ones(1), np.ones(2), "noise_std"),
    (np.ones((1, 2)), np.ones(1), True, "noise_std"),
])
def test_condition_names_bad_argument(A, y, noise, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        GM2.condition(A, y, noise)


# ============================================================================ CLI
def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("probkit: error: "), err
    return err[0]


@pytest.mark.parametrize("argv, word", [
    (ESTIMATE + ["--fp", "-3", "--delta", "1e-5"], "fp"),
    (["privacy", "estimate", "--fp", "3", "--negatives", "100", "--fn", "3", "--positives", "100", "--delta", "1.5"],
     "delta"),
    (["privacy", "estimate", "--fp", "x"], "--fp"),
    (["privacy", "estimate", "--fp", "3"], "required"),
    (["nosuchcommand"], "invalid choice"),
    (["demo", "--only", "nosuchpanel"], "nosuchpanel"),
    (["demo", "--size", "huge"], "--size"),
])
def test_cli_bad_arguments_exit_2_with_one_line(capsys, argv, word):
    assert main(argv) == 2
    assert word in _err_line(capsys)


def test_cli_debug_shows_traceback(capsys):
    assert main(["--debug"] + ESTIMATE + ["--fp", "-3", "--delta", "1e-5"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("probkit: error: ")


def test_cli_plot_into_missing_folder_is_created_and_failures_exit_1(tmp_path, capsys):
    png = tmp_path / "new" / "deeper" / "eps.png"
    args = ESTIMATE + ["--fp", "5", "--delta", "1e-5", "--json"]
    assert main(args + ["--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    # a plot path that is an existing folder: the write fails -> exit 1, one line
    (tmp_path / "taken.png").mkdir()
    assert main(args + ["--plot", str(tmp_path / "taken.png")]) == 1
    assert "taken.png" in _err_line(capsys)
    # a "folder" that is a file: cannot be created -> bad argument, exit 2
    (tmp_path / "file").write_text("x")
    assert main(args + ["--plot", str(tmp_path / "file" / "eps.png")]) == 2
    assert "--plot" in _err_line(capsys)


def test_cli_entry_point_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "probkit.cli"] + ESTIMATE + ["--fp", "-3", "--delta", "1e-5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("probkit: error: ")


# ============================================================================ samplers' rows
def _nan_below_half(score):
    return lambda x, t: jnp.where(t < 0.5, jnp.nan, 1.0) * score(x, t)


@SLOW
def test_row_sample_nan_score_mid_run_raises():
    with pytest.raises(ValueError, match="score"):
        probkit.sample(jax.random.PRNGKey(0), PROC, _nan_below_half(GM2.score_fn(PROC)), (2,), 16, 10, "ddpm")


@SLOW
@pytest.mark.parametrize("case", ["nan_score", "nan_denoise", "huge_step"])
def test_row_dlg_nonfinite_raises(case):
    from probkit import dmcmc, smc

    score = GM2.score_fn(PROC)
    kw = dict(logdensity_fn=GM2.logdensity_fn(PROC), num_chains=4, num_samples=2, burn_in=2,
              denoise=dmcmc.Denoise(num_steps=2), t_move=dmcmc.NoiseGrid(num_levels=8))
    if case == "nan_score":
        score = lambda x, t: jnp.full_like(x, jnp.nan)  # noqa: E731
    elif case == "nan_denoise":
        score = _nan_below_half(GM2.score_fn(PROC))
        kw.update(t_move=dmcmc.NoiseGrid((0.6, 0.9), 8))
    else:
        kw.update(x_move=smc.mala(dmcmc.noise_scaled_step(PROC, 1e6)))
    with pytest.raises(ValueError, match="score|step|non-finite"):
        dmcmc.dlg(jax.random.PRNGKey(0), PROC, score, (2,), **kw)


@SLOW
def test_row_anneal_one_step_warns_degenerate():
    with pytest.warns(Warning, match="ESS|degenerate|steps"):
        probkit.fkc.anneal(jax.random.PRNGKey(0), PROC, GM2.score_fn(PROC), 2.0, 64, 1, shape=(2,))


@SLOW
def test_row_twisted_smc_twist_zero_warns():
    from probkit import inverse

    lik = inverse.gaussian(np.eye(2)[:1], jnp.array([0.5]), 0.1)
    with pytest.warns(Warning, match="ESS|degenerate"):
        inverse.twisted_smc(jax.random.PRNGKey(0), PROC, GM2.score_fn(PROC), lik, 64, 10, twist_c=0.0)


@SLOW
def test_row_dps_log_evidence_is_nan():
    from probkit import inverse

    lik = inverse.gaussian(np.eye(2)[:1], jnp.array([0.5]), 0.1)
    out = inverse.dps(jax.random.PRNGKey(0), PROC, GM2.score_fn(PROC), lik, 16, 5)
    assert np.isnan(float(out.log_evidence))


def test_row_run_smc_nan_init_log_weight_named():
    from probkit.smc import FeynmanKacModel, run_smc

    model = FeynmanKacModel(init=lambda k: jax.random.normal(k, (2,)), transition=lambda k, t, tn, x: x,
                            log_potential=lambda t, tn, a, b: jnp.zeros(()), init_log_weight=lambda x: jnp.nan)
    with pytest.raises(ValueError, match="init_log_weight"):
        run_smc(jax.random.PRNGKey(0), model, 8, jnp.linspace(1.0, 0.0, 3))


@pytest.mark.parametrize("shape", [(3,), 2])
def test_row_event_shape_named(shape):
    try:
        probkit.sample(jax.random.PRNGKey(0), PROC, GM2.score_fn(PROC), shape, 4, 2)
    except ValueError as e:
        assert "shape" in str(e)
    else:
        assert shape == 2  # an int shape may be accepted as (2,); (3,) against a 2-D score may not


@pytest.mark.parametrize("beta", [np.float32(2.0), jnp.array(2.0), np.int64(2)])
def test_row_numpy_scalar_beta_accepted(beta):
    out = probkit.fkc.anneal(jax.random.PRNGKey(0), PROC, GM2.score_fn(PROC), beta, 16, 4, shape=(2,))
    assert np.isfinite(float(out.log_evidence))


@pytest.mark.parametrize("key", [0, "seed", np.zeros(3, np.uint32)])
def test_row_prng_key_named(key):
    with pytest.raises(ValueError, match="key"):
        probkit.sample(key, PROC, GM2.score_fn(PROC), (2,), 4, 2)


@pytest.mark.parametrize("key", ["seed", np.zeros(3, np.uint32), jax.random.split(jax.random.PRNGKey(0), 2)])
def test_row_prng_key_named_by_run_smc_and_dlg(key):
    from probkit import dmcmc
    from probkit.smc import FeynmanKacModel, run_smc

    model = FeynmanKacModel(init=lambda k: jnp.zeros(2), transition=lambda k, t, tn, x: x,
                            log_potential=lambda t, tn, a, b: jnp.zeros(()))
    with pytest.raises(ValueError, match="`key`"):
        run_smc(key, model, 4, jnp.linspace(1.0, 0.0, 3))
    with pytest.raises(ValueError, match="`key`"):
        dmcmc.dlg(key, PROC, GM2.score_fn(PROC), (2,), logdensity_fn=GM2.logdensity_fn(PROC))


@pytest.mark.parametrize("key", [jax.random.PRNGKey(0), jax.random.key(0), jax.random.key(0, impl="rbg")])
def test_valid_prng_keys_pass_the_check(key):
    from probkit import _checks

    _checks.prng_key(key)
