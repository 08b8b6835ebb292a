"""Gaussian mixtures: the exact score models of probkit.

A mixture p_0 = sum_k w_k N(mu_k, S_k) stays a mixture under every linear forward process:
p_t = sum_k w_k N(alpha_t mu_k, alpha_t^2 S_k + sigma_t^2 I), so noised log densities and scores
are closed-form at every t. Products of mixtures and posteriors of linear-Gaussian
observations are mixtures too; they are the exact targets against which every sampler of
probkit is tested.

Covariances are full ``(K, d, d)`` or diagonal ``(K, d)`` (kept diagonal under noising, so
high-dimensional diagonal mixtures stay cheap).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.typing import ArrayLike

from probkit._checks import is_traced, positive_int
from probkit._jit import fast_compile

Array = jax.Array

__all__ = ["GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


@jax.tree_util.register_pytree_node_class
class GaussianMixture:
    """Mixture ``sum_k w_k N(mu_k, S_k)`` in R^d (a JAX pytree).

    Args:
      weights: ``(K,)`` non-negative, summing to one.
      means: ``(K, d)``.
      covs: ``(K, d, d)`` symmetric positive definite, or ``(K, d)`` positive diagonals.
    """

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike, *, validate: bool = True):
        weights = jnp.asarray(weights, dtype=jnp.result_type(float))
        means = jnp.asarray(means, dtype=weights.dtype)
        covs = jnp.asarray(covs, dtype=weights.dtype)
        if validate and not is_traced(weights, means, covs):
            self._validate(np.asarray(weights), np.asarray(means), np.asarray(covs))
        self.weights, self.means, self.covs = weights, means, covs

    @staticmethod
    def _validate(w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> None:
        if w.ndim != 1 or w.shape[0] < 1:
            raise ValueError(f"`weights` must be a non-empty 1-D array, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("`weights` must be finite and non-negative")
        if abs(w.sum() - 1.0) > 1e-5:
            raise ValueError(f"`weights` must sum to one, they sum to {w.sum():.6g}")
        if mu.ndim != 2 or mu.shape[0] != w.shape[0]:
            raise ValueError(f"`means` must have shape (K, d) = ({w.shape[0]}, d), got {mu.shape}")
        if not np.all(np.isfinite(mu)):
            raise ValueError("`means` must be finite")
        k, d = mu.shape
        if cov.shape == (k, d):
            if not np.all(np.isfinite(cov)) or np.any(cov <= 0):
                raise ValueError("`covs` (diagonal) must be finite and strictly positive")
        elif cov.shape == (k, d, d):
            if not np.all(np.isfinite(cov)):
                raise ValueError("`covs` must be finite")
            if not np.allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-5, atol=1e-8 * max(1.0, np.abs(cov).max())):
                raise ValueError("`covs` must be symmetric")
            eig_min = np.linalg.eigvalsh(cov.astype(np.float64)).min(axis=-1)
            if np.any(eig_min <= 0):
                raise ValueError(f"`covs` must be positive definite; smallest eigenvalue {eig_min.min():.3g}")
        else:
            raise ValueError(f"`covs` must have shape (K, d, d) = {(k, d, d)} or (K, d) = {(k, d)}, got {cov.shape}")

    # --- pytree ---------------------------------------------------------------------
    def tree_flatten(self):
        return (self.weights, self.means, self.covs), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.weights, obj.means, obj.covs = children
        return obj

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.num_components}, d={self.dim}, covs={'diag' if self.is_diag else 'full'})"

    # --- basic properties ----------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def is_diag(self) -> bool:
        return self.covs.ndim == 2

    def full_covs(self) -> Array:
        """Covariances as ``(K, d, d)`` matrices."""
        return jax.vmap(jnp.diag)(self.covs) if self.is_diag else self.covs

    def mean(self) -> Array:
        return self.weights @ self.means

    def covariance(self) -> Array:
        dev = self.means - self.mean()
        within = jnp.einsum("k,kij->ij", self.weights, self.full_covs())
        return within + jnp.einsum("k,ki,kj->ij", self.weights, dev, dev)

    # --- densities -------------------------------------------------------------------
    def component_log_probs(self, x: ArrayLike) -> Array:
        """``log w_k + log N(x; mu_k, S_k)`` for one point ``x`` of shape ``(d,)``; shape ``(K,)``."""
        x = jnp.asarray(x)
        if self.is_diag:
            # sum_j (x_j - mu_kj)^2 / s_kj expanded into matrix products (as scikit-learn's diagonal
            # GMM does): under vmap they are GEMMs over the particles, with no (N, K, d) temporaries,
            # which XLA:GPU compiled for minutes at N = 4096, d = 800 (benchmarks/compile.py).
            prec = 1.0 / self.covs
            dot = functools.partial(jnp.dot, precision=jax.lax.Precision.HIGHEST)  # no TF32 on GPUs
            maha = dot(prec, x * x) - 2.0 * dot(self.means * prec, x) + jnp.sum(self.means**2 * prec, axis=-1)
            maha = jnp.maximum(maha, 0.0)
            logdet = jnp.sum(jnp.log(self.covs), axis=-1)
        else:
            # Precisions and log-determinants depend on the mixture only, so under vmap over
            # particles they are computed once; per particle only matrix-vector products remain.
            prec, logdet = self._precisions()
            diff = x[None, :] - self.means
            maha = jnp.einsum("ki,kij,kj->k", diff, prec, diff)
        return jnp.log(self.weights) - 0.5 * (maha + logdet + self.dim * _LOG_2PI)

    def _precisions(self) -> tuple[Array, Array]:
        """Full-covariance precisions S_k^{-1} and log det S_k, via Cholesky."""
        chol = jnp.linalg.cholesky(self.covs)
        eye = jnp.broadcast_to(jnp.eye(self.dim, dtype=self.covs.dtype), self.covs.shape)
        prec = jax.vmap(lambda c, e: cho_solve((c, True), e))(chol, eye)
        prec = 0.5 * (prec + jnp.swapaxes(prec, -1, -2))
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        return prec, logdet

    def log_prob(self, x: ArrayLike) -> Array:
        """Exact log density at one point ``x`` of shape ``(d,)``."""
        return jax.nn.logsumexp(self.component_log_probs(x))

    def responsibilities(self, x: ArrayLike) -> Array:
        return jax.nn.softmax(self.component_log_probs(x))

    def score(self, x: ArrayLike) -> Array:
        """Closed-form grad log p(x) = -sum_k r_k(x) S_k^{-1} (x - mu_k) at one point."""
        x = jnp.asarray(x)
        r = self.responsibilities(x)
        if self.is_diag:  # sum_k r_k (mu_k - x) / s_k as matrix products (see component_log_probs)
            prec, dot = 1.0 / self.covs, functools.partial(jnp.dot, precision=jax.lax.Precision.HIGHEST)
            return dot(r, self.means * prec) - x * dot(r, prec)
        prec_diff = jnp.einsum("kij,kj->ki", self._precisions()[0], x[None, :] - self.means)
        return -(r @ prec_diff)

    def sample(self, key: Array, n: int) -> Array:
        """``n`` independent draws, shape ``(n, d)``."""
        n = positive_int("n", n)
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, jnp.log(self.weights), shape=(n,))
        z = jax.random.normal(k_noise, (n, self.dim), self.means.dtype)
        if self.is_diag:
            return self.means[comp] + jnp.sqrt(self.covs[comp]) * z
        chol = jnp.linalg.cholesky(self.covs)

        # One (n, d) x (d, d) product per component, kept where comp == k: memory O(n d) rather
        # than the O(n d^2) of gathering a Cholesky factor per draw (10 GB at n = 4096, d = 800).
        def add_component(k, acc):
            return jnp.where((comp == k)[:, None], z @ chol[k].T, acc)

        noise = jax.lax.fori_loop(0, self.num_components, add_component, jnp.zeros_like(z))
        return self.means[comp] + noise

    # --- diffusion -------------------------------------------------------------------
    def noised(self, process, t: ArrayLike) -> "GaussianMixture":
        """The exact marginal p_t: components N(alpha_t mu_k, alpha_t^2 S_k + sigma_t^2 I)."""
        if not is_traced(t):
            t_np = np.asarray(t)
            if t_np.ndim != 0 or not (0.0 <= float(t_np) <= 1.0):
                raise ValueError(f"`t` must be a scalar in [0, 1], got {t_np}")
        a, s = process.alpha(t), process.sigma(t)
        noise = s**2 if self.is_diag else s**2 * jnp.eye(self.dim, dtype=self.covs.dtype)
        return GaussianMixture(self.weights, a * self.means, a**2 * self.covs + noise, validate=False)

    def score_fn(self, process) -> Callable[[Array, Array], Array]:
        """Exact score ``(x, t) -> grad_x log p_t(x)`` for one particle.

        A ``jax.tree_util.Partial`` of a module-level function: the mixture's arrays are its
        leaves (traced by the samplers' jit) and the process is static, so two calls give the
        same compiled program."""
        return jax.tree_util.Partial(_noised_score, self, process)

    def logdensity_fn(self, process) -> Callable[[Array, Array], Array]:
        """Exact noised log density ``(x, t) -> log p_t(x)`` for one particle (a ``Partial``,
        like :meth:`score_fn`)."""
        return jax.tree_util.Partial(_noised_log_prob, self, process)

    # --- algebra -----------------------------------------------------------------------
    def _check_other(self, other: "GaussianMixture") -> None:
        if not isinstance(other, GaussianMixture):
            raise ValueError(f"`other` must be a GaussianMixture, got {type(other).__name__}")
        if other.dim != self.dim:
            raise ValueError(f"`other` has dimension {other.dim}, expected {self.dim}")

    def _pair_terms(self, other: "GaussianMixture"):
        """Log weights of the K1*K2 product components and their means/covariances."""
        if self.is_diag and other.is_diag:
            s1, s2 = self.covs[:, None], other.covs[None, :]
            cov = 1.0 / (1.0 / s1 + 1.0 / s2)
            mean = cov * (self.means[:, None] / s1 + other.means[None, :] / s2)
            ssum = s1 + s2
            diff = self.means[:, None] - other.means[None, :]
            log_n = -0.5 * (jnp.sum(diff**2 / ssum, -1) + jnp.sum(jnp.log(ssum), -1) + self.dim * _LOG_2PI)
        else:
            p1 = jnp.linalg.inv(self.full_covs())[:, None]
            p2 = jnp.linalg.inv(other.full_covs())[None, :]
            cov = jnp.linalg.inv(p1 + p2)
            cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
            mv = functools.partial(jnp.einsum, "...ij,...j->...i")  # batched matrix-vector products
            mean = mv(cov, mv(p1, self.means[:, None]) + mv(p2, other.means[None, :]))
            ssum = self.full_covs()[:, None] + other.full_covs()[None, :]
            diff = self.means[:, None] - other.means[None, :]
            chol = jnp.linalg.cholesky(ssum)
            z = jax.vmap(jax.vmap(lambda c, r: solve_triangular(c, r, lower=True)))(chol, diff)
            logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
            log_n = -0.5 * (jnp.sum(z**2, -1) + logdet + self.dim * _LOG_2PI)
        log_w = jnp.log(self.weights)[:, None] + jnp.log(other.weights)[None, :] + log_n
        return log_w, mean, cov

    def log_normalizer_product(self, other: "GaussianMixture") -> Array:
        """log of int p_self(x) p_other(x) dx."""
        self._check_other(other)
        return jax.nn.logsumexp(self._pair_terms(other)[0])

    def product(self, other: "GaussianMixture") -> "GaussianMixture":
        """The normalised product p_self * p_other / Z, a mixture of K1*K2 components."""
        self._check_other(other)
        log_w, mean, cov = self._pair_terms(other)
        k = log_w.size
        w = jax.nn.softmax(log_w.reshape(k))
        return GaussianMixture(w, mean.reshape(k, self.dim), cov.reshape(k, *cov.shape[2:]), validate=False)

    def power(self, beta: float) -> "GaussianMixture":
        """p^beta / Z for a single Gaussian (N(mu, S/beta)); mixtures have no closed form."""
        if self.num_components != 1:
            raise ValueError("`power` has a closed form only for a single Gaussian (K = 1)")
        if not beta > 0:
            raise ValueError(f"`beta` must be positive, got {beta}")
        return GaussianMixture(self.weights, self.means, self.covs / beta, validate=False)

    def _check_observation(self, A, y: ArrayLike, noise_std: ArrayLike):
        """``A`` as a dense ``(m, d)`` matrix and ``y`` as an ``(m,)`` vector, checked.

        ``A`` may be a matrix or any linear operator with ``apply`` / ``in_shape`` /
        ``out_shape`` (:class:`probkit.inverse.operators.LinearOperator`): it is materialised
        as a dense matrix by applying it to the d basis vectors (d applications, O(m d)
        memory; fine for moderate d). ``y`` may then have the operator's ``out_shape``.
        """
        out_shape = None
        if all(hasattr(A, a) for a in ("apply", "in_shape", "out_shape")):
            out_shape = tuple(A.out_shape)
            A = self._operator_matrix(A)
        else:
            if callable(A):
                raise ValueError("`A` must be an (m, d) matrix or a probkit.inverse.operators.LinearOperator; "
                                 "wrap a linear function with probkit.inverse.operators.from_function(fn, (d,))")
            try:
                A = jnp.asarray(A, dtype=self.means.dtype)
            except (TypeError, ValueError):
                raise ValueError(f"`A` must be an (m, {self.dim}) matrix or a LinearOperator, got "
                                 f"{type(A).__name__}") from None
        try:
            y = jnp.asarray(y, dtype=self.means.dtype)
        except (TypeError, ValueError):
            raise ValueError(f"`y` must be an array of numbers, got {type(y).__name__}") from None
        if A.ndim != 2 or A.shape[1] != self.dim:
            raise ValueError(f"`A` must have shape (m, {self.dim}), got {A.shape}")
        if out_shape is not None and y.shape == out_shape:
            y = y.reshape(-1)  # an operator's observation shape, flattened like its matrix rows
        if y.shape != (A.shape[0],):
            raise ValueError(f"`y` must have shape ({A.shape[0]},), got {y.shape}")
        if not is_traced(A) and not np.all(np.isfinite(np.asarray(A))):
            raise ValueError("`A` must be finite")
        if not is_traced(y, noise_std):
            if not np.all(np.isfinite(np.asarray(y))):
                raise ValueError("`y` must be finite")
            ns = np.asarray(noise_std)
            if ns.ndim != 0 or ns.dtype.kind not in "iuf" or not np.isfinite(ns) or ns <= 0:
                raise ValueError(f"`noise_std` must be a positive scalar, got {noise_std}")
        return A, y

    def _operator_matrix(self, op) -> Array:
        """Dense ``(m, d)`` matrix of a linear operator acting on ``in_shape`` with ``prod = d``."""
        in_shape = tuple(int(s) for s in op.in_shape)
        if math.prod(in_shape) != self.dim:
            raise ValueError(f"`A` acts on signals of shape {in_shape} ({math.prod(in_shape)} entries), "
                             f"but the mixture has dimension {self.dim}")
        eye = jnp.eye(self.dim, dtype=self.means.dtype)
        rows = jax.vmap(lambda e: jnp.reshape(op.apply(e.reshape(in_shape)), (-1,)))(eye)  # (d, m) = A^T
        return jnp.asarray(rows.T, dtype=self.means.dtype)

    def _kalman(self, A: Array, y: Array, noise_std: ArrayLike):
        covs = self.full_covs()
        m = A.shape[0]
        s_obs = jnp.einsum("ij,kjl,ml->kim", A, covs, A) + noise_std**2 * jnp.eye(m, dtype=covs.dtype)
        resid = y[None, :] - self.means @ A.T
        chol = jnp.linalg.cholesky(s_obs)
        z = jax.vmap(lambda c, r: solve_triangular(c, r, lower=True))(chol, resid)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
        log_lik = -0.5 * (jnp.sum(z**2, -1) + logdet + m * _LOG_2PI)
        cross = jnp.einsum("kij,mj->kim", covs, A)  # S_k A^T, (K, d, m)
        gain = jax.vmap(lambda c, ct: cho_solve((c, True), ct.T).T)(chol, cross)  # S A^T (A S A^T + s^2)^-1
        mean = self.means + jnp.einsum("kim,km->ki", gain, resid)
        cov = covs - jnp.einsum("kim,kjm->kij", gain, cross)
        cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
        return jnp.log(self.weights) + log_lik, mean, cov

    def condition(self, A, y: ArrayLike, noise_std: ArrayLike) -> "GaussianMixture":
        """Exact posterior of x given y = A x + N(0, noise_std^2 I) (a Kalman update per component;
        weights proportional to w_k N(y; A mu_k, A S_k A^T + noise_std^2 I)).

        ``A``: an ``(m, d)`` matrix, or any :mod:`probkit.inverse.operators` linear operator
        (``mask``, ``downsample``, ``blur``, ``dense``, ``from_function``, ...) whose
        ``in_shape`` has d entries; the operator is materialised as a dense matrix (d
        applications, O(m d) memory, then O(K d^3) for the update: moderate d only). ``y``:
        shape ``(m,)`` or the operator's ``out_shape``. The posterior is over flattened x.
        """
        A, y = self._check_observation(A, y, noise_std)
        log_w, mean, cov = self._kalman(A, y, noise_std)
        return GaussianMixture(jax.nn.softmax(log_w), mean, cov, validate=False)

    def log_marginal_likelihood(self, A, y: ArrayLike, noise_std: ArrayLike) -> Array:
        """log p(y) = log sum_k w_k N(y; A mu_k, A S_k A^T + noise_std^2 I) (``A`` as in :meth:`condition`)."""
        A, y = self._check_observation(A, y, noise_std)
        return jax.nn.logsumexp(self._kalman(A, y, noise_std)[0])


@fast_compile
def _noised_score(mixture: GaussianMixture, process, x: Array, t: Array) -> Array:
    return mixture.noised(process, t).score(x)


@fast_compile
def _noised_log_prob(mixture: GaussianMixture, process, x: Array, t: Array) -> Array:
    return mixture.noised(process, t).log_prob(x)
