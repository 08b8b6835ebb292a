r"""Likelihoods of an observation y and the likelihood paths l_t used by the ensemble sampler.

**Likelihoods** (functions of ONE signal x):

* :func:`gaussian` — y = A x + N(0, s_y² I) with a linear operator A
  (:mod:`probkit.inverse.operators`) and known noise s_y > 0:
  log l(x) = -‖y - A x‖² / (2 s_y²) - (m/2) log(2π s_y²),  ∇ log l = Aᵀ(y - A x) / s_y².
* :func:`from_numpyro` — any observation model given as ``x -> numpyro distribution over y``;
  log l(x) = Σ log_prob(y) over all entries (gradients by autodiff).

**Likelihood paths** l_t, t ∈ [0, 1], with l_0 = l (the posterior path is q_t ∝ p_t l_t;
Chen, Ren, Min, Ying, Izzo 2025, arXiv 2506.03979). The sampler is exact for *every* path with
l_0 = l — the path only changes the variance of the weights — so we offer two:

* :func:`gaussian_path` (linear-Gaussian likelihoods): l_t(x) = N(y; A x / α_t,
  s_y² I + c (σ_t/α_t)² A Aᵀ). For c = 1 this is the exact p(y | x_t) under a flat prior on
  x_0 (x_0 | x_t ~ N(x_t/α_t, σ_t²/α_t² I)), so early on it carries exactly the information
  that survives the noise. Its Laplacian is closed form and constant in x:
  Δ log l_t = -α_t⁻² Σ_i λ_i / (s_y² + c r_t² λ_i), λ_i the eigenvalues of A Aᵀ; and q̃_1 ∝
  N(0, v I) l_1 is Gaussian, sampled exactly (Matheron's rule) at the start.
* :func:`tempered_path` (any likelihood): l_t = l(x)^{λ(t)} with λ(t) = α_t²/(α_t² + σ_t²) by
  default (the signal fraction; λ(0) = 1). Δ log l_t = λ(t) Δ log l: closed form for the
  Gaussian likelihood (-tr(AᵀA)/s_y²), otherwise the trace of the Hessian — ``"exact"``
  (d Jacobian-vector products of ∇ log l) or ``"hutchinson"`` (Rademacher probes zᵀ H z, an
  unbiased estimate; inside exp(h·r) its noise biases the weights upwards by Jensen). The
  Laplacian is only used by the ensemble sampler's ``weights="rate"``; its default transition
  weights need values of l_t only.

Both paths also give ``denoised_loglikelihood_fn(x0, t)``, the path's likelihood at a denoised estimate x0
of the clean signal (the ensemble sampler's default ``twist="denoised"``), and the Gaussian path
gives ``propose`` (exact draws from a Gaussian kernel times l_t, with the normaliser).

A path is a :class:`LikelihoodPath` of pure functions of ONE particle: ``loglikelihood_fn(x, t)``
and ``laplacian(key, x, t)``; ∇ₓ log l_t and ∂_t log l_t come from its autodiff (they never
touch the score network).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from jax.typing import ArrayLike

from probkit.diffusion.schedules import Process
from probkit import _checks
from probkit.inverse.operators import LinearOperator, as_operator

Array = jax.Array

__all__ = ["Likelihood", "LikelihoodPath", "gaussian", "from_numpyro", "gaussian_path", "tempered_path", "make_path",
           "PATHS"]

_LOG_2PI = math.log(2 * math.pi)
PATHS = ("gaussian", "tempered")


class Likelihood(NamedTuple):
    """log p(y | x) for one signal x of shape ``x_shape``.

    ``operator``/``y``/``noise_std`` are set for linear-Gaussian likelihoods (``kind ==
    "gaussian"``), which unlocks the closed-form paths and exact starts; ``laplacian`` is
    Δ log l (a constant for linear-Gaussian likelihoods, else ``None``).
    """

    log_prob: Callable[[Array], Array]
    x_shape: tuple[int, ...]
    y: Array
    kind: str
    operator: LinearOperator | None = None
    noise_std: float | None = None
    laplacian: float | None = None

    def grad_log_prob(self, x: Array) -> Array:
        """∇ₓ log l(x) (closed form Aᵀ(y - A x)/s_y² for Gaussian likelihoods)."""
        if self.kind == "gaussian":
            op = self.operator
            return op.adjoint(self.y - op.apply(x)) / self.noise_std**2
        return jax.grad(self.log_prob)(x)


class LikelihoodPath(NamedTuple):
    """A path l_t with l_0 = l, as pure functions of ONE particle.

    Attributes:
      loglikelihood_fn: ``(x, t) -> log l_t(x)``.
      laplacian: ``(key, x, t) -> Δₓ log l_t(x)`` (exact or an unbiased estimate).
      init: optional exact sampler of q̃_{t0} ∝ N(0, v I) l_{t0}: ``(key, t0, v) -> (x, log Z)``
        with log Z = log ∫ N(x; 0, v I) l_{t0}(x) dx; ``None``: start from N(0, v I) weighted by
        l_{t0}.
      name: ``"gaussian"`` or ``"tempered"``.
      estimated_laplacian: True if ``laplacian`` is a random estimate.
      propose: optional exact sampler of the Gaussian kernel times l_t:
        ``(key, mean, var, t) -> (x, log Z)`` with x ~ N(mean, var I) l_t(x) / Z and
        log Z = log ∫ N(x; mean, var I) l_t(x) dx (``var`` ≥ 0; ``var = 0`` gives x = mean).
        Used by the ensemble sampler's locally optimal ("adapted") proposal.
      denoised_loglikelihood_fn: optional ``(x0, t) -> log l̃_t`` the path's likelihood as a function of a
        denoised estimate x0 of the clean signal (Gaussian path: N(y; A x0, s_y² I + c r_t² A Aᵀ);
        tempered path: λ(t) log l(x0)); l̃_0 = l. Used by the ensemble sampler's
        ``twist="denoised"`` (x0 = Tweedie's x̂_0(x) from the cached score).
    """

    loglikelihood_fn: Callable[[Array, Array], Array]
    laplacian: Callable[[Array, Array, Array], Array]
    init: Callable[[Array, Array, float], tuple[Array, Array]] | None
    name: str
    estimated_laplacian: bool = False
    propose: Callable[[Array, Array, Array, Array], tuple[Array, Array]] | None = None
    denoised_loglikelihood_fn: Callable[[Array, Array], Array] | None = None


# ----------------------------------------------------------------------------------------------
def _check_finite_y(y: Array) -> Array:
    if not _checks.is_traced(y) and not bool(np.all(np.isfinite(np.asarray(y)))):
        raise ValueError("`y` must be finite (it contains NaN or inf)")
    return y


def gaussian(operator: LinearOperator | ArrayLike, y: ArrayLike, noise_std: float,
             in_shape: Sequence[int] | None = None) -> Likelihood:
    """Linear-Gaussian likelihood y = A x + N(0, noise_std² I).

    ``operator``: a :class:`~probkit.inverse.operators.LinearOperator` or a matrix (m, n);
    ``y`` must have shape ``operator.out_shape`` and be finite; ``noise_std`` > 0.
    """
    op = as_operator(operator, in_shape)
    y_arr = jnp.asarray(y, dtype=jnp.result_type(float))
    if tuple(y_arr.shape) != tuple(op.out_shape):
        raise ValueError(f"`y` must have the operator's output shape {op.out_shape}, got {tuple(y_arr.shape)}")
    y_arr = _check_finite_y(y_arr)
    s = _checks.scalar("noise_std", noise_std, low=0.0, low_open=True)
    m = int(np.prod(op.out_shape))
    const = -0.5 * m * (_LOG_2PI + 2 * math.log(s))

    lap = -op.frobenius_sq() / s**2 if op.has_gram else None
    # a Partial of a module-level function: y and the operator's arrays are pytree leaves, so
    # the samplers trace them (a new y reuses the compiled program)
    return Likelihood(Partial(_gaussian_log_prob, op, y_arr, s, const), tuple(op.in_shape), y_arr, "gaussian", op, s, lap)


def _gaussian_log_prob(op, y, s, const, x):
    r = y - op.apply(x)
    return -0.5 * jnp.sum(r**2) / s**2 + const


def from_numpyro(dist_fn: Callable[[Array], Any], y: ArrayLike, x_shape: Sequence[int]) -> Likelihood:
    """User likelihood: ``dist_fn(x)`` is a numpyro distribution over y (any observation model,
    e.g. ``lambda x: dist.Poisson(jnp.exp(A @ x))``); log l(x) = Σ ``dist_fn(x).log_prob(y)``.

    ``y`` must be finite and have shape ``batch_shape + event_shape`` of ``dist_fn(x)``.
    """
    if not callable(dist_fn):
        raise ValueError("`dist_fn` must be a callable x -> numpyro distribution")
    x_shape = _checks.shape("x_shape", x_shape)
    y_arr = jnp.asarray(y)
    if jnp.issubdtype(y_arr.dtype, jnp.floating):
        y_arr = _check_finite_y(y_arr.astype(jnp.result_type(float)))
    d = dist_fn(jnp.zeros(x_shape, jnp.result_type(float)))
    if not hasattr(d, "log_prob") or not hasattr(d, "batch_shape"):
        raise ValueError("`dist_fn` must return a numpyro distribution")
    dist_shape = tuple(d.batch_shape) + tuple(d.event_shape)
    if tuple(y_arr.shape) != dist_shape:
        raise ValueError(f"`y` must have the distribution's shape {dist_shape} (batch + event), got {tuple(y_arr.shape)}")

    return Likelihood(Partial(_numpyro_log_prob, dist_fn, y_arr), x_shape, y_arr, "numpyro")


def _numpyro_log_prob(dist_fn, y, x):
    return jnp.sum(dist_fn(x).log_prob(y))


# ----------------------------------------------------------------------------------------------
def gaussian_path(likelihood: Likelihood, process: Process, c: float = 1.0) -> LikelihoodPath:
    """l_t(x) = N(y; A x/α_t, s_y² I + c (σ_t/α_t)² A Aᵀ) for a linear-Gaussian likelihood whose
    operator has Gram structure (all operators of :mod:`probkit.inverse.operators` except
    ``from_function``). See the module docstring."""
    if likelihood.kind != "gaussian":
        raise ValueError("the 'gaussian' `likelihood_path` needs a linear-Gaussian likelihood (probkit.inverse.gaussian); use 'tempered'")
    op = likelihood.operator
    if not op.has_gram:
        raise ValueError(f"the 'gaussian' `likelihood_path` needs an operator with Gram eigenvalues; {op.name!r} has none (use 'tempered' or a dense matrix)")
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
        raise ValueError(f"`path_c` must be a non-negative number, got {c!r}")
    y, s2, lam = likelihood.y, likelihood.noise_std**2, op.gram_eigvals
    m = int(np.prod(op.out_shape))

    def _spectrum(t):
        a, sig = process.alpha(t), process.sigma(t)
        return a, s2 + c * (sig / a) ** 2 * lam

    def log_l(x, t):
        a, ev = _spectrum(t)
        r = y - op.apply(x) / a
        quad = jnp.sum(r * op.gram_apply(1.0 / ev, r))
        return -0.5 * (quad + jnp.sum(jnp.log(ev)) + m * _LOG_2PI)

    def laplacian(key, x, t):
        a, ev = _spectrum(t)
        return -jnp.sum(lam / ev) / a**2

    def propose(key, mean, v, t):
        # Exact draw from N(mean, v I) * l_t: y = B x + e, B = A/α, e ~ N(0, Σ), Σ = U diag(ev) Uᵀ.
        # Matheron's rule: x = x0 + v Bᵀ (Σ + v B Bᵀ)⁻¹ (y - B x0 - e), x0 ~ N(mean, v I);
        # log Z = log N(y; B mean, Σ + v B Bᵀ), diagonal in the Gram basis.
        a, ev = _spectrum(t)
        k1, k2 = jax.random.split(key)
        x0 = mean + jnp.sqrt(v) * jax.random.normal(k1, op.in_shape, mean.dtype)
        e = op.gram_apply(jnp.sqrt(ev), jax.random.normal(k2, op.out_shape, mean.dtype))
        gev = ev + v * lam / a**2
        x = x0 + (v / a) * op.adjoint(op.gram_apply(1.0 / gev, y - op.apply(x0) / a - e))
        r = y - op.apply(mean) / a
        log_z = -0.5 * (jnp.sum(r * op.gram_apply(1.0 / gev, r)) + jnp.sum(jnp.log(gev)) + m * _LOG_2PI)
        return x, log_z

    def init(key, t0, v):
        # exact draw from N(0, v I) * l_{t0} and log ∫ N(x; 0, v I) l_{t0}(x) dx
        return propose(key, jnp.zeros(op.in_shape, jnp.result_type(float)), v, t0)

    def log_l_denoised(x0, t):
        return log_l(process.alpha(t) * x0, t)

    return LikelihoodPath(log_l, laplacian, init, "gaussian", False, propose, log_l_denoised)


def tempered_path(likelihood: Likelihood, process: Process, schedule: Callable[[Array], Array] | None = None,
                  laplacian: str = "auto", num_probes: int = 4) -> LikelihoodPath:
    """l_t = l(x)^{λ(t)} for any likelihood; ``schedule`` λ(t) with λ(0) = 1 (default
    α_t²/(α_t² + σ_t²)). ``laplacian``: ``"auto"`` (closed form for Gaussian likelihoods with a
    Gram structure, else ``"exact"`` up to d = 256 and ``"hutchinson"`` above), ``"exact"`` or
    ``"hutchinson"`` (``num_probes`` Rademacher probes)."""
    lam = Partial(_signal_fraction, process) if schedule is None else schedule
    if not callable(lam):
        raise ValueError("`schedule` must be a callable t -> lambda(t)")
    lam0 = float(lam(jnp.asarray(0.0)))
    if abs(lam0 - 1.0) > 1e-6:
        raise ValueError(f"`schedule` must satisfy lambda(0) = 1 so that l_0 = l, got lambda(0) = {lam0}")
    if laplacian not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"`laplacian` must be 'auto', 'exact' or 'hutchinson', got {laplacian!r}")
    num_probes = _checks.positive_int("num_probes", num_probes)
    log_prob, shape = likelihood.log_prob, likelihood.x_shape
    dim = int(np.prod(shape))

    def log_l(x, t):
        return lam(t) * log_prob(x)

    mode = laplacian
    if mode == "auto":
        mode = "closed" if likelihood.laplacian is not None else ("exact" if dim <= 256 else "hutchinson")
    grad_fn = jax.grad(log_prob)

    if mode == "closed" or (likelihood.laplacian is not None and laplacian == "exact"):
        const = likelihood.laplacian

        def lap_fn(key, x, t):
            return lam(t) * const

    elif mode == "exact":

        def lap_fn(key, x, t):
            flat = jnp.reshape(x, (dim,))
            g = lambda z: jnp.reshape(grad_fn(jnp.reshape(z, shape)), (dim,))  # noqa: E731
            eye = jnp.eye(dim, dtype=flat.dtype)
            diag = jax.vmap(lambda e: jnp.dot(e, jax.jvp(g, (flat,), (e,))[1]))(eye)
            return lam(t) * jnp.sum(diag)

    else:

        def lap_fn(key, x, t):
            z = jax.random.rademacher(key, (num_probes, *shape), dtype=x.dtype)
            hz = jax.vmap(lambda v: jax.jvp(grad_fn, (x,), (v,))[1])(z)
            return lam(t) * jnp.mean(jnp.sum(z * hz, axis=tuple(range(1, z.ndim))))

    return LikelihoodPath(log_l, lap_fn, None, "tempered", mode == "hutchinson", None, log_l)


def _signal_fraction(process: Process, t: Array) -> Array:
    a2, s2 = process.alpha(t) ** 2, process.sigma(t) ** 2
    return a2 / (a2 + s2)


def make_path(path: str | LikelihoodPath, likelihood: Likelihood, process: Process, **options) -> LikelihoodPath:
    """Build a path by name (``"gaussian"``, ``"tempered"``) or pass a :class:`LikelihoodPath`."""
    if isinstance(path, LikelihoodPath):
        return path
    if path in PATHS:
        return (gaussian_path if path == "gaussian" else tempered_path)(likelihood, process, **options)
    raise ValueError(f"`likelihood_path` must be one of {PATHS} or a LikelihoodPath, got {path!r}")
