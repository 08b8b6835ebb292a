"""Save and load score networks without pickle: a ``.npz`` of named arrays and a ``.json``.

``<path>.npz`` holds the parameters keyed by their tree path (``blocks/w1``); ``<path>.json``
holds the format name and version, the network config, the diffusion process (class name and
hyperparameters), each array's shape and stored dtype, the SHA-256 of the ``.npz`` and the
user's metadata. Loading never unpickles and turns every corrupt-file case into a
``ValueError`` naming the file.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _io
from probkit.models.score_mlp import Params, ScoreMLPConfig, param_template

__all__ = ["save_score_model", "load_score_model", "read_metadata", "FORMAT_NAME", "FORMAT_VERSION",
           "process_to_dict", "process_from_dict"]

FORMAT_NAME = "probkit.score_mlp"
FORMAT_VERSION = 1
_PROCESS_NAMES = ("VP", "VPCosine", "VE", "EDM")


def process_to_dict(process) -> dict[str, Any]:
    """``{"name": "VP", "params": {...}}`` for a :mod:`probkit.diffusion` process."""
    name = type(process).__name__
    if name not in _PROCESS_NAMES or not dataclasses.is_dataclass(process):
        raise ValueError(f"`process` must be one of probkit.diffusion.{_PROCESS_NAMES}, got {type(process).__name__}")
    return {"name": name, "params": dataclasses.asdict(process)}


def process_from_dict(d: Any):
    """Inverse of :func:`process_to_dict` (ValueError on anything else)."""
    from probkit import diffusion

    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("params"), dict):
        raise ValueError("metadata field 'process' must be an object with a 'name' and a 'params' object")
    if d["name"] not in _PROCESS_NAMES:
        raise ValueError(f"unknown process {d['name']!r}; expected one of {_PROCESS_NAMES}")
    cls = getattr(diffusion, d["name"])
    try:
        return cls(**d["params"])
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ValueError(f"bad parameters for process {d['name']}: {e}") from None


def save_score_model(
    path: str | os.PathLike, params: Params, config: ScoreMLPConfig, process, *, dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Write ``<path>.npz`` (arrays keyed by tree path, e.g. ``blocks/w1``) and ``<path>.json``.

    The JSON holds the format name and version, the network config, the process (class name
    and hyperparameters), each array's shape and stored dtype, the SHA-256 of the ``.npz`` and
    optional JSON-serialisable ``metadata`` (e.g. the training recipe). ``dtype="float16"``
    halves the files; loading always returns float32. Missing folders are created; each file
    is written atomically. No pickle anywhere. Returns the two file names.
    """
    if not isinstance(config, ScoreMLPConfig):
        raise ValueError(f"`config` must be a ScoreMLPConfig, got {type(config).__name__}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"`dtype` must be 'float32' or 'float16', got {dtype!r}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"`metadata` must be a dict, got {type(metadata).__name__}")
    proc = process_to_dict(process)
    arrays = {k: np.asarray(v) for k, v in _io.named_leaves(params).items()}
    expected = _io.named_leaves(param_template(config))
    if set(arrays) != set(expected) or any(arrays[k].shape != expected[k].shape for k in arrays):
        raise ValueError("`params` do not match `config` (different array names or shapes)")
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": config.to_dict(),
        "process": proc,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        "metadata": metadata or {},
    }
    try:
        return _io.write_files(path, arrays, meta)
    except (TypeError, ValueError) as e:  # metadata not JSON-serialisable (or NaN in it)
        raise ValueError(f"`metadata` must be JSON-serialisable with finite numbers ({e})") from None


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed JSON side-car of a saved model (validated format name and version)."""
    return _io.read_json(path, FORMAT_NAME, FORMAT_VERSION)


def load_score_model(path: str | os.PathLike) -> tuple[Params, ScoreMLPConfig, Any]:
    """Read a model written by :func:`save_score_model`; returns ``(params, config, process)``.

    Never unpickles. Raises ``ValueError`` naming the file on every bad-file case: a missing
    or unreadable file, bytes that are not an ``.npz`` archive, a corrupt member (flipped
    bytes, truncation), an ``.npz`` whose SHA-256 differs from the one in the ``.json``,
    invalid JSON, a wrong format name or version, a malformed config or process, missing or
    unexpected arrays, wrong shapes, non-float or non-finite values.
    """
    base = _io.base_path(path)
    meta = read_metadata(base)
    where = f"`path` {base}.json"
    try:
        config = ScoreMLPConfig.from_dict(meta.get("config"))
        process = process_from_dict(meta.get("process"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    sha = meta.get("npz_sha256")
    if sha is not None and not isinstance(sha, str):
        raise ValueError(f"{where}: field 'npz_sha256' must be a string")
    arrays = _io.read_npz(base, sha)  # files from before the digest was recorded have none
    where = f"`path` {base}.npz"
    params = _io.arrays_to_params(arrays, param_template(config), where)
    return params, config, process
