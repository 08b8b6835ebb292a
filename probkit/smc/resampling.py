r"""Resampling that preserves the masses of separated regions: Hilbert-ordered systematic /
stratified resampling and the Srinivasan sampling process (SSP).

Gerber, Chopin & Whiteley (2019), "Negative association, ordering and convergence of resampling
methods", Ann. Statist. 47(4). With the particles in arbitrary order, systematic resampling gives
particle i floor(N W_i) or ceil(N W_i) offspring, but the remainders of the particles of one
region (a mode) are summed independently of the region, so every resampling step adds
O(p (1 - p) / N) noise to the mass p of that region. Sorting the particles along a Hilbert
space-filling curve first makes each region (mostly) a contiguous block of the cumulative
weights, so it receives N · (its weight) offspring up to ±1.

:func:`ordered` returns a hashable resampler ``(key, weights, n, positions) -> indices`` that the
engine accepts as ``run_smc(..., resampling=ordered("systematic"))``. For d > 3 the curve is
drawn in the three leading principal directions of the particle cloud (subspace iteration).
:func:`ssp` is a sequential ``lax.scan`` over the particles: fine on CPUs, slow on GPUs for
large N (ordered systematic resampling is the fast stand-in).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from blackjax.smc import resampling as bj_resampling

Array = jax.Array

__all__ = ["hilbert_index", "hilbert_order", "ssp", "ordered", "ORDERED_RESAMPLING"]


def hilbert_index(q: Array, bits: int) -> Array:
    """Hilbert-curve index of integer points ``q`` (shape ``(N, n)``, entries in [0, 2^bits)),
    n * bits <= 31 (Skilling 2004, "Programming the Hilbert curve", AIP Conf. Proc. 707)."""
    n = q.shape[-1]
    if n * bits > 31:
        raise ValueError(f"`bits` * dim must be <= 31, got {bits} * {n}")
    x = [q[:, i].astype(jnp.int32) for i in range(n)]
    m = 1 << (bits - 1)
    # inverse undo
    qq = m
    while qq > 1:
        p = qq - 1
        for i in range(n):
            hit = (x[i] & qq) != 0
            t = (x[0] ^ x[i]) & p
            x0_hit = x[0] ^ p
            new_x0 = jnp.where(hit, x0_hit, x[0] ^ t)
            if i > 0:
                x[i] = jnp.where(hit, x[i], x[i] ^ t)
            x[0] = new_x0
        qq >>= 1
    # Gray encode
    for i in range(1, n):
        x[i] = x[i] ^ x[i - 1]
    t = jnp.zeros_like(x[0])
    qq = m
    while qq > 1:
        t = jnp.where((x[n - 1] & qq) != 0, t ^ (qq - 1), t)
        qq >>= 1
    x = [xi ^ t for xi in x]
    h = jnp.zeros_like(x[0])
    for b in range(bits - 1, -1, -1):
        for i in range(n):
            h = (h << 1) | ((x[i] >> b) & 1)
    return h


def _principal_coords(x: Array, k: int, iters: int = 3) -> Array:
    """Coordinates of the (N, d) cloud in its k leading principal directions (subspace iteration)."""
    xc = x - jnp.mean(x, axis=0)
    v = jax.random.normal(jax.random.PRNGKey(17), (x.shape[1], k), x.dtype)
    for _ in range(iters):
        v, _ = jnp.linalg.qr(xc.T @ (xc @ v))
    return xc @ v


def hilbert_order(positions: Array) -> Array:
    """Permutation sorting the particles ``(N, ...)`` along a Hilbert curve of their bounding box
    (d <= 3: the coordinates; d > 3: the three leading principal coordinates)."""
    x = positions.reshape(positions.shape[0], -1)
    d = x.shape[1]
    if d > 3:
        x = _principal_coords(x, 3)
        d = 3
    bits = 31 // d if d > 1 else 31
    bits = min(bits, 15)
    lo, hi = jnp.min(x, axis=0), jnp.max(x, axis=0)
    scale = (2**bits - 1) / jnp.maximum(hi - lo, 1e-30)
    q = jnp.clip(jnp.floor((x - lo) * scale), 0, 2**bits - 1).astype(jnp.int32)
    if d == 1:
        return jnp.argsort(q[:, 0])
    return jnp.argsort(hilbert_index(q, bits))


# ----------------------------------------------------------------------------------------------
# resamplers
def ssp(key: Array, weights: Array, num_samples: int) -> Array:
    """Srinivasan sampling process resampling (Gerber, Chopin & Whiteley 2019, Alg. 1).

    Offspring counts o_i ∈ {floor(n W_i), ceil(n W_i)} with E o_i = n W_i, obtained by pairing the
    fractional parts sequentially (``lax.scan`` over the particles)."""
    w = weights / jnp.sum(weights)
    nw = num_samples * w
    fl = jnp.floor(nw)
    frac = nw - fl
    u = jax.random.uniform(key, (w.shape[0],), w.dtype)

    def body(carry, j):
        i, pi = carry
        pj = frac[j]
        s = pi + pj
        lt = s < 1.0
        # s < 1: the survivor gets s, the other 0; s >= 1: one gets 1, the survivor s - 1
        p_keep_i = jnp.where(lt, pi / jnp.maximum(s, 1e-30), 1.0 - (1.0 - pj) / jnp.maximum(2.0 - s, 1e-30))
        keep_i = u[j] < p_keep_i  # i survives (continues), j is resolved
        resolved_idx = jnp.where(keep_i, j, i)
        resolved_val = jnp.where(lt, 0.0, 1.0)
        new_p = jnp.where(lt, s, s - 1.0)
        new_i = jnp.where(keep_i, i, j)
        return (new_i, new_p), (resolved_idx, resolved_val)

    (i_last, p_last), (ridx, rval) = jax.lax.scan(body, (jnp.int32(0), frac[0]), jnp.arange(1, w.shape[0]))
    counts = fl.at[ridx].add(rval).at[i_last].add(jnp.round(p_last))
    counts = counts.astype(jnp.int32)
    return jnp.repeat(jnp.arange(w.shape[0]), counts, total_repeat_length=num_samples)


_BASE = {"systematic": bj_resampling.systematic, "stratified": bj_resampling.stratified, "ssp": ssp}
ORDERED_RESAMPLING = tuple(_BASE)


class _Ordered:
    """Resampler ``(key, weights, n, positions) -> ancestor indices`` that sorts the particles
    along a Hilbert curve before ``scheme``. Hashable (usable as a static engine setting)."""

    def __init__(self, scheme: str):
        if scheme not in _BASE:
            raise ValueError(f"`scheme` must be one of {ORDERED_RESAMPLING}, got {scheme!r}")
        self.scheme = scheme
        self.name = f"hilbert-{scheme}"

    def __call__(self, key, weights, num_samples, positions):
        perm = hilbert_order(positions)
        idx = _BASE[self.scheme](key, weights[perm], num_samples)
        return perm[idx]

    def __eq__(self, other):
        return isinstance(other, _Ordered) and other.scheme == self.scheme

    def __hash__(self):
        return hash(("probkit.smc.resampling.ordered", self.scheme))

    def __repr__(self):
        return f"ordered({self.scheme!r})"


def ordered(scheme: str = "systematic") -> _Ordered:
    """Hilbert-ordered resampling (Gerber, Chopin & Whiteley 2019): pass as
    ``run_smc(..., resampling=ordered("systematic"))`` (or ``"stratified"``, ``"ssp"``)."""
    return _Ordered(scheme)
