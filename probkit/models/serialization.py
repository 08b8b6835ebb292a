"""Save and load score networks without pickle: a ``.npz`` of named arrays and a ``.json``
(format, config, process, array shapes, the ``.npz``'s SHA-256, metadata; see
:func:`save_score_model`).
"""
from __future__ import annotations

import importlib.resources
import os
from typing import Any, Callable

from probkit import _io
from probkit.diffusion import EDM, VE, VP, VPCosine
from probkit.models.score_mlp import Params, ScoreMLPConfig, param_template

__all__ = ["save_score_model", "load_score_model", "read_metadata", "FORMAT_NAME", "FORMAT_VERSION",
           "process_to_dict", "process_from_dict", "pretrained_path", "load_pretrained_file"]

FORMAT_NAME = "probkit.score_mlp"
FORMAT_VERSION = 1
_PROCESSES = {cls.__name__: cls for cls in (VP, VPCosine, VE, EDM)}


def process_to_dict(process) -> dict[str, Any]:
    """``{"name": "VP", "params": {...}}`` for a :mod:`probkit.diffusion` process."""
    return _io.to_record(process, _PROCESSES, "process")


def process_from_dict(d: Any):
    """Inverse of :func:`process_to_dict` (ValueError on anything else)."""
    return _io.from_record(d, _PROCESSES, "process")


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
    meta = {"config": config.to_dict(), "process": process_to_dict(process), "metadata": metadata or {}}
    return _io.save_params(path, FORMAT_NAME, FORMAT_VERSION, params, param_template(config), meta, dtype)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed JSON side-car of a saved model (validated format name and version)."""
    return _io.read_json(path, FORMAT_NAME, FORMAT_VERSION)


def load_score_model(path: str | os.PathLike) -> tuple[Params, ScoreMLPConfig, Any]:
    """Read a model written by :func:`save_score_model`; returns ``(params, config, process)``.

    Never unpickles. Raises ``ValueError`` naming the file on every bad-file case: missing,
    unreadable, not an ``.npz``, a corrupt member, a SHA-256 that differs from the ``.json``'s,
    invalid JSON, wrong format or version, malformed config or process, missing or unexpected
    arrays, wrong shapes, non-float or non-finite values.
    """
    meta = read_metadata(path)
    config, process = parse_config_process(path, meta, ScoreMLPConfig)
    return _io.load_params(path, meta, param_template(config)), config, process


def parse_config_process(path: str | os.PathLike, meta: dict[str, Any], config_cls: type, with_process: bool = True):
    """``(config, process)`` of a model file's JSON (``config`` alone if not ``with_process``);
    ValueError naming the file."""
    try:
        config = config_cls.from_dict(meta.get("config"))
        return (config, process_from_dict(meta.get("process"))) if with_process else config
    except ValueError as e:
        raise ValueError(f"`path` {_io.base_path(path)}.json: {e}") from None


def pretrained_path(name: str) -> str:
    """Base path (without extension) of the model ``name`` shipped in ``probkit/models/pretrained``."""
    return os.fspath(importlib.resources.files("probkit.models") / "pretrained" / name)


def load_pretrained_file(name: str, loader: Callable[[str], Any], what: str, script: str) -> Any:
    """``loader(pretrained_path(name))``; FileNotFoundError naming ``what`` and the training
    ``script`` when the file is absent."""
    base = pretrained_path(name)
    if not os.path.exists(base + ".npz"):
        raise FileNotFoundError(f"{what} not found at {base}.npz; reinstall probkit or run {script}")
    return loader(base)
