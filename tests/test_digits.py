"""8x8 digits data and the pretrained score model shipped with probkit (probkit.models.digits)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probkit.diffusion import VP
from probkit.models.digits import (
    digits_to_images,
    load_digits_data,
    load_pretrained_digits,
    pretrained_digits_metadata,
    pretrained_digits_score_fn,
)
from probkit.models.nets import dsm_loss, init_score_mlp


def test_load_digits_data():
    x, y = load_digits_data(return_labels=True)
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    x01 = load_digits_data(scale=(0.0, 1.0))
    np.testing.assert_allclose(x01, (x + 1) / 2, atol=1e-6)
    imgs = digits_to_images(x[:3])
    assert imgs.shape == (3, 8, 8) and imgs.min() >= 0 and imgs.max() <= 16
    with pytest.raises(ValueError, match="scale"):
        load_digits_data(scale=(1.0, 1.0))
    with pytest.raises(ValueError, match="x"):
        digits_to_images(np.zeros((2, 10)))


def test_pretrained_model_loads_and_denoises():
    params, config, process = load_pretrained_digits()
    assert config.event_shape == (64,)
    assert isinstance(process, VP)
    meta = pretrained_digits_metadata()
    assert meta["trained_with"] == "benchmarks/train_digits.py"
    # DSM loss on the data (common random numbers across models): the trained net must be far
    # below an untrained one (loss ~1) and a Gaussian fit, and close to the loss recorded at training time (the
    # stored weights are float16, so the recorded loss is reproduced only approximately;
    # s.e. of the loss over 1797 x 64 terms with random t is ~0.003).
    x0 = jnp.asarray(load_digits_data())
    key = jax.random.PRNGKey(0)
    loss = float(np.mean([dsm_loss(params, config, process, k, x0) for k in jax.random.split(key, 4)]))
    p0, c0 = init_score_mlp(jax.random.PRNGKey(0), 64, hidden=8, depth=1, gaussian_skip=False)
    loss0 = float(dsm_loss(p0, c0, process, key, x0))
    assert abs(loss0 - 1.0) < 0.05
    # the best isotropic Gaussian (the untrained network with its skip) scores ~0.25
    pg, cg = init_score_mlp(jax.random.PRNGKey(0), 64, hidden=8, depth=1, data_std=config.data_std,
                            data_mean=np.asarray(x0).mean(0))
    loss_gauss = float(dsm_loss(pg, cg, process, key, x0))
    assert loss < 0.5 * loss_gauss and loss < 0.1 and abs(loss - meta["dsm_loss_ema_full_data"]) < 0.02, (loss, meta)
    score_fn, proc = pretrained_digits_score_fn()
    s = jax.vmap(score_fn, (0, None))(x0[:8], 0.5)
    assert s.shape == (8, 64) and np.all(np.isfinite(s))


def test_pretrained_model_with_a_fast_ode_sampler():
    # Probability-flow samplers must stay in the data range (pixels in [-1, 1]): a score that
    # vanishes far from the data sends prior tail draws to |x| ~ 1/alpha_1 ~ 150. The shipped
    # model gives max |x| ~ 1.55 with DPM-Solver++(2M), 20 log-SNR steps, on 1000 samples.
    import probkit

    score_fn, proc = pretrained_digits_score_fn()
    x = probkit.sample(jax.random.PRNGKey(3), proc, score_fn, (64,), 64, 20, method="dpm_solver_2m",
                       grid="log_snr").samples
    assert np.all(np.isfinite(x)) and float(jnp.abs(x).max()) < 2.0
    # pixel means of the samples follow the data's (64 samples: s.e. per pixel <= 1/8; we
    # compare the average absolute deviation over the 64 pixels)
    data_mean = load_digits_data().mean(0)
    assert float(np.mean(np.abs(np.clip(np.asarray(x), -1, 1).mean(0) - data_mean))) < 0.15
