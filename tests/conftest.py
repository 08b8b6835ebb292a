"""Shared fixtures. Tests run on CPU in float32 with fixed PRNG keys."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

from probkit.models import GaussianMixture  # noqa: E402


@pytest.fixture
def mixture_2d() -> GaussianMixture:
    """A skewed, correlated 2-D mixture (full covariances)."""
    return GaussianMixture(
        jnp.array([0.3, 0.5, 0.2]),
        jnp.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]]),
        jnp.array([[[0.5, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.6]], [[0.2, 0.0], [0.0, 0.2]]]),
    )


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
