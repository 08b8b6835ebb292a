r"""Matrix-free linear forward operators with exact adjoints.

An observation model y = A x + noise needs A (``apply``), its adjoint Aᵀ (``adjoint``) and, for
the Gaussian likelihood paths of :mod:`probkit.inverse.likelihoods`, functions of the Gram
matrix A Aᵀ (on the observation space). Every operator here has a Gram matrix that is
diagonal in a known orthogonal basis U, so A Aᵀ = U diag(λ) Uᵀ is stored as its eigenvalues
``gram_eigvals`` (shaped like an observation) and ``gram_apply(values, v) = U diag(values) Uᵀ v``:

* :func:`mask` (inpainting): A x = x[observed], A Aᵀ = I (U = I, λ = 1).
* :func:`downsample` (super-resolution by k×k average pooling over the last two axes):
  A Aᵀ = I / k² (each output is the mean of k² inputs).
* :func:`blur` / :func:`gaussian_blur` (convolution with **periodic boundaries**): A is
  circulant, so its adjoint is the circular correlation with the same kernel — exact, with no
  boundary bookkeeping — and A Aᵀ is diagonalised by the 2-D DFT with λ = |K̂|².
* :func:`dense` (a matrix): λ and U from ``eigh(M Mᵀ)``, computed once.
* :func:`from_function` (any linear map, adjoint by ``jax.linear_transpose``; no Gram
  structure, so only the likelihood paths that do not need it accept it).

Operators act on ONE signal x of shape ``in_shape``; vmap for batches. ``adjoint`` is the exact
adjoint for the Euclidean inner products (tests: ⟨A x, y⟩ = ⟨x, Aᵀ y⟩).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from jax.typing import ArrayLike

from probkit import _checks

Array = jax.Array

__all__ = ["LinearOperator", "mask", "downsample", "blur", "gaussian_blur", "dense", "from_function", "as_operator"]


class LinearOperator(NamedTuple):
    """A linear map R^{in_shape} -> R^{out_shape} with its adjoint.

    Attributes:
      apply: ``x -> A x`` (one signal of shape ``in_shape``).
      adjoint: ``y -> Aᵀ y`` (one observation of shape ``out_shape``).
      in_shape, out_shape: event shapes.
      gram_eigvals: eigenvalues λ of A Aᵀ, shaped like an observation (``None`` if unknown).
      gram_apply: ``(values, v) -> U diag(values) Uᵀ v`` for ``values`` shaped like
        ``gram_eigvals``: applies any function of A Aᵀ (``None`` if unknown).
      name: a short description.
    """

    apply: Callable[[Array], Array]
    adjoint: Callable[[Array], Array]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    gram_eigvals: Array | None = None
    gram_apply: Callable[[Array, Array], Array] | None = None
    name: str = "operator"

    @property
    def has_gram(self) -> bool:
        return self.gram_eigvals is not None and self.gram_apply is not None

    def frobenius_sq(self) -> Array:
        """tr(Aᵀ A) = Σ λ (needs the Gram eigenvalues)."""
        if not self.has_gram:
            raise ValueError(f"operator {self.name!r} has no Gram eigenvalues")
        return jnp.sum(self.gram_eigvals)


def _elementwise(values: Array, v: Array) -> Array:
    return values * v


def _image_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
    in_shape = _checks.shape("in_shape", in_shape)
    if len(in_shape) not in (2, 3):
        raise ValueError(f"`in_shape` must be (H, W) or (C, H, W), got {in_shape}")
    return in_shape


def mask(observed: ArrayLike) -> LinearOperator:
    """Inpainting: keep the entries where the boolean array ``observed`` is True.

    A x = x.ravel()[idx] (shape ``(m,)``), Aᵀ y scatters y back and fills zeros; A Aᵀ = I_m.
    """
    obs = np.asarray(observed)
    if obs.dtype != bool and not np.all(np.isin(obs, (0, 1))):
        raise ValueError("`observed` must be a boolean (or 0/1) array")
    obs = obs.astype(bool)
    if obs.ndim == 0:
        raise ValueError("`observed` must have at least one dimension")
    idx = np.flatnonzero(obs.ravel())
    if idx.size == 0:
        raise ValueError("`observed` must select at least one entry")
    in_shape, size, m, idx_j = tuple(obs.shape), int(obs.size), int(idx.size), jnp.asarray(idx)
    return LinearOperator(Partial(_mask_apply, idx_j, size), Partial(_mask_adjoint, idx_j, size, in_shape),
                          in_shape, (m,), jnp.ones((m,)), Partial(_elementwise), f"mask({m}/{size})")


def _mask_apply(idx, size, x):
    return jnp.reshape(x, (size,))[idx]


def _mask_adjoint(idx, size, in_shape, y):
    return jnp.zeros((size,), y.dtype).at[idx].set(y).reshape(in_shape)


def downsample(in_shape: Sequence[int], factor: int) -> LinearOperator:
    """Super-resolution: k×k average pooling over the last two axes of (H, W) or (C, H, W).

    (A x)[.., i, j] = mean of the k×k block; Aᵀ y repeats each value over its block divided by
    k² (so A Aᵀ = I / k²).
    """
    in_shape = _image_shape(in_shape)
    k = _checks.positive_int("factor", factor)
    h, w = in_shape[-2:]
    if h % k or w % k:
        raise ValueError(f"`factor` {k} must divide the image size {(h, w)}")
    out_shape = (*in_shape[:-2], h // k, w // k)
    eig = jnp.full(out_shape, 1.0 / (k * k))
    return LinearOperator(Partial(_down_apply, k), Partial(_down_adjoint, k), in_shape, out_shape, eig,
                          Partial(_elementwise), f"downsample(x{k})")


def _down_apply(k, x):
    *lead, h, w = x.shape
    return jnp.reshape(x, (*lead, h // k, k, w // k, k)).mean(axis=(-3, -1))


def _down_adjoint(k, y):
    return jnp.repeat(jnp.repeat(y, k, axis=-2), k, axis=-1) / (k * k)


def blur(in_shape: Sequence[int], kernel: ArrayLike) -> LinearOperator:
    """Convolution with ``kernel`` (kh, kw; odd sizes, centred) and periodic boundaries.

    (A x)[i, j] = Σ_{a, b} K[a, b] x[(i - a + ca) mod H, (j - b + cb) mod W], applied per channel
    of (H, W) or (C, H, W). Periodic boundaries make A circulant: Aᵀ is the circular
    correlation with K (in Fourier space, multiplication by conj(K̂)) — exact — and
    A Aᵀ = F* diag(|K̂|²) F. Computed with FFTs (O(HW log HW), any kernel size).
    """
    in_shape = _image_shape(in_shape)
    ker = np.asarray(kernel, dtype=float)
    if ker.ndim != 2 or ker.shape[0] % 2 == 0 or ker.shape[1] % 2 == 0:
        raise ValueError(f"`kernel` must be a 2-D array with odd sizes, got shape {ker.shape}")
    if not np.all(np.isfinite(ker)):
        raise ValueError("`kernel` must be finite")
    h, w = in_shape[-2:]
    kh, kw = ker.shape
    if kh > h or kw > w:
        raise ValueError(f"`kernel` {ker.shape} is larger than the image {(h, w)}")
    # Embed the kernel with its centre at (0, 0) (periodically), then take its DFT.
    emb = np.roll(np.pad(ker, ((0, h - kh), (0, w - kw))), (-(kh // 2), -(kw // 2)), axis=(0, 1))
    k_hat = jnp.asarray(np.fft.fft2(emb))
    eig = jnp.broadcast_to(jnp.abs(k_hat) ** 2, in_shape).astype(jnp.result_type(float))
    # gram_apply(values, v): values a function of |K̂|² on the DFT grid (broadcast over
    # channels); real-symmetric spectra give real results.
    return LinearOperator(Partial(_fmul, k_hat), Partial(_fmul, jnp.conj(k_hat)), in_shape, in_shape, eig,
                          Partial(_fmul), f"blur({kh}x{kw}, periodic)")


def _fmul(mult, v):
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(v) * mult)).astype(v.dtype)


def gaussian_blur(in_shape: Sequence[int], std: float, size: int | None = None) -> LinearOperator:
    """:func:`blur` with a normalised Gaussian kernel of standard deviation ``std`` pixels
    (``size`` odd, default 2·ceil(2 std) + 1)."""
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ValueError(f"`std` must be a positive number, got {std!r}")
    size = 2 * math.ceil(2 * std) + 1 if size is None else size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"`size` must be a positive odd integer, got {size!r}")
    g = np.exp(-0.5 * ((np.arange(size) - size // 2) / std) ** 2)
    ker = np.outer(g, g)
    return blur(in_shape, ker / ker.sum())


def dense(matrix: ArrayLike, in_shape: Sequence[int] | None = None) -> LinearOperator:
    """A dense matrix M (m, n) acting on flattened signals of ``in_shape`` (default ``(n,)``).

    The Gram matrix M Mᵀ is eigendecomposed once (O(m³)): λ, U = eigh(M Mᵀ).
    """
    mat = np.asarray(matrix, dtype=float)
    if mat.ndim != 2 or mat.shape[0] < 1 or mat.shape[1] < 1:
        raise ValueError(f"`matrix` must be a non-empty 2-D array, got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError("`matrix` must be finite")
    m, n = mat.shape
    in_shape = (n,) if in_shape is None else _checks.shape("in_shape", in_shape)
    if int(np.prod(in_shape)) != n:
        raise ValueError(f"`in_shape` {in_shape} has {int(np.prod(in_shape))} entries, `matrix` has {n} columns")
    lam, vecs = np.linalg.eigh(mat @ mat.T)
    mat_j = jnp.asarray(mat, dtype=jnp.result_type(float))
    u = jnp.asarray(vecs, dtype=mat_j.dtype)
    lam_j = jnp.asarray(np.clip(lam, 0.0, None), dtype=mat_j.dtype)

    return LinearOperator(Partial(_dense_apply, mat_j), Partial(_dense_adjoint, mat_j, in_shape), in_shape, (m,),
                          lam_j, Partial(_dense_gram, u), f"dense({m}x{n})")


def _dense_apply(mat, x):
    return mat @ jnp.reshape(x, (mat.shape[1],))


def _dense_adjoint(mat, in_shape, y):
    return jnp.reshape(mat.T @ y, in_shape)


def _dense_gram(u, values, v):
    return u @ (values * (u.T @ v))


def from_function(fn: Callable[[Array], Array], in_shape: Sequence[int]) -> LinearOperator:
    """Wrap a linear function ``fn`` (one signal -> one observation); the adjoint is obtained by
    ``jax.linear_transpose`` (exact). No Gram structure: use it with the ``"tempered"`` path
    or give a :func:`dense` / structured operator for the ``"gaussian"`` path."""
    if not callable(fn):
        raise ValueError("`fn` must be callable")
    in_shape = _checks.shape("in_shape", in_shape)
    proto = jax.ShapeDtypeStruct(in_shape, jnp.result_type(float))
    transpose = jax.linear_transpose(fn, proto)
    return LinearOperator(fn, lambda y: transpose(y)[0], in_shape, jax.eval_shape(fn, proto).shape, None, None,
                          "function")


def as_operator(op, in_shape: Sequence[int] | None = None) -> LinearOperator:
    """Return ``op`` if it is a :class:`LinearOperator`; a 2-D array becomes :func:`dense`."""
    if isinstance(op, LinearOperator):
        return op
    if callable(op):
        raise ValueError("`operator` must be a LinearOperator or a matrix; wrap functions with from_function(fn, in_shape)")
    return dense(op, in_shape)
