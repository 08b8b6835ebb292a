"""Pickle-free files for models and checkpoints: a ``.npz`` of named arrays beside a ``.json``.

Private helpers shared by every model file (:func:`save_params` / :func:`load_params`, configs
through :class:`JsonConfig`) and every checkpoint (training, SMC, DLG). Arrays are stored by
their pytree path (``"blocks/w1"``) and restored against a *template* pytree (names, shapes and
dtypes checked; nothing is ever unpickled). Writes are atomic per file and the JSON records the
``.npz``'s SHA-256, so flipped bytes, truncation or a pair from two saves are detected; every
way a file can be bad raises ``ValueError`` naming the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from probkit import _checks

PyTree = Any

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip


def base_path(path: str | os.PathLike, name: str = "path") -> str:
    """``path`` without a trailing ``.npz`` / ``.json`` (ValueError naming ``name`` if not a path)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`{name}` must be a file path (str or os.PathLike), got {type(path).__name__}")
    p = os.fsdecode(path)
    for suffix in (".npz", ".json"):
        if p.endswith(suffix):
            return p[: -len(suffix)]
    return p


def named_leaves(tree: PyTree, prefix: str = "") -> dict[str, Any]:
    """``{"prefix/blocks/w1": leaf, ...}``: leaves keyed by their tree path."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        out[f"{prefix}/{name}" if prefix and name else (prefix or name)] = leaf
    return out


def tree_to_arrays(tree: PyTree, prefix: str) -> dict[str, np.ndarray]:
    """Host copies of the leaves of ``tree`` keyed ``prefix/<path>`` (typed PRNG keys as raw data)."""
    out = {}
    for name, leaf in named_leaves(tree, prefix).items():
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[name] = np.asarray(leaf)
    return out


def arrays_to_tree(template: PyTree, arrays: dict[str, np.ndarray], prefix: str, where: str, *,
                   params: bool = False) -> PyTree:
    """Rebuild a pytree shaped like ``template`` from ``arrays[prefix/<path>]``.

    Shapes and dtypes must match the template exactly (a checkpoint is restored bitwise). With
    ``params=True`` (network parameters) the names must match exactly, the shapes too, and the
    values be finite floating point, returned as float32.
    """
    expected = named_leaves(template, prefix)
    if params:
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        if missing or extra:
            raise ValueError(f"{where}: arrays do not match the config (missing {missing}, unexpected {extra})")
    out = []
    for name, spec in expected.items():
        if name not in arrays:
            raise ValueError(f"{where}: array {name!r} is missing")
        arr, dtype = arrays[name], np.dtype(spec.dtype)
        if params:
            if arr.shape != spec.shape:
                raise ValueError(f"{where}: array {name!r} has shape {arr.shape}, config implies {spec.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"{where}: array {name!r} has dtype {arr.dtype}, expected floating point")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: array {name!r} contains non-finite values")
            arr = arr.astype(np.float32)
        elif arr.shape != tuple(spec.shape) or arr.dtype != dtype:
            raise ValueError(
                f"{where}: array {name!r} has shape {arr.shape} and dtype {arr.dtype}, "
                f"expected {tuple(spec.shape)} and {dtype}"
            )
        out.append(jnp.asarray(arr))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), out)


def check_recipe(meta: dict[str, Any], recipe: dict[str, Any], used: str, initial_state: str) -> None:
    """Refuse to resume a checkpoint whose recorded ``recipe`` differs from this call's, naming
    the first argument that differs (``initial_state``: what a different start digest means)."""
    saved = meta.get("recipe")
    if not isinstance(saved, dict):
        raise ValueError(f"`checkpoint` {used}.json lacks the field 'recipe'")
    for name, value in recipe.items():
        if saved.get(name) != value:
            what, values = (initial_state, "") if name == "initial_state" else (
                f"`{name}`", f" (saved {str(saved.get(name))[:80]}, now {str(value)[:80]})")
            raise ValueError(f"{what} differs from the one recorded in the checkpoint {used}.json{values}; resume "
                             "with the arguments of the original run, or pass resume=False to start again")


class JsonConfig:
    """Mixin of the frozen-dataclass network configs: ``to_dict`` (tuples as lists, nested
    configs as objects) and a checked ``from_dict`` (ValueError naming ``config``) that converts
    the fields annotated in ``_from_json`` and calls ``_validate``."""

    _from_json: dict[str, Any] = {}  # field -> converter of its JSON value

    def _validate(self) -> None:
        pass

    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            return v.to_dict() if isinstance(v, JsonConfig) else list(v) if isinstance(v, tuple) else v

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Any):
        if not isinstance(d, dict):
            raise ValueError(f"`config` must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"`config` has unknown fields {sorted(unknown)}")
        try:
            cfg = cls(**{k: cls._from_json[k](v) if k in cls._from_json else v for k, v in d.items()})
        except TypeError as e:
            raise ValueError(f"bad `config`: {e}") from None
        cfg._validate()
        return cfg


def to_record(obj: Any, classes: dict[str, type], field: str) -> dict[str, Any]:
    """``{"name": ..., "params": {...}}`` of a dataclass instance of one of ``classes``."""
    name = type(obj).__name__
    if classes.get(name) is not type(obj) or not dataclasses.is_dataclass(obj):
        raise ValueError(f"`{field}` must be one of {tuple(classes)}, got {name}")
    return {"name": name, "params": dataclasses.asdict(obj)}


def from_record(d: Any, classes: dict[str, type], field: str) -> Any:
    """Inverse of :func:`to_record` (ValueError naming the metadata ``field`` on anything else)."""
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("params"), dict):
        raise ValueError(f"metadata field '{field}' must be an object with a 'name' and a 'params' object")
    if d["name"] not in classes:
        raise ValueError(f"unknown {field} {d['name']!r}; expected one of {tuple(classes)}")
    try:
        return classes[d["name"]](**d["params"])
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ValueError(f"bad parameters for {field} {d['name']}: {e}") from None


def save_params(path: str | os.PathLike, format_name: str, version: int, params: PyTree, template: PyTree,
                meta: dict[str, Any], dtype: str = "float32") -> tuple[str, str]:
    """Write network ``params`` (checked against ``template``; stored as ``dtype``, float32 or
    float16) as ``<path>.npz`` and ``meta`` plus the format, version and array shapes as
    ``<path>.json`` (atomic, with the ``.npz``'s SHA-256). Returns the two file names."""
    _checks.choice("dtype", dtype, ("float32", "float16"))
    if not isinstance(meta.get("metadata", {}), dict):
        raise ValueError(f"`metadata` must be a dict, got {type(meta['metadata']).__name__}")
    base = base_path(path)
    arrays = {k: np.asarray(v) for k, v in named_leaves(params).items()}
    expected = named_leaves(template)
    if set(arrays) != set(expected) or any(arrays[k].shape != expected[k].shape for k in arrays):
        raise ValueError("`params` do not match `config` (different array names or shapes)")
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    meta = {"format": format_name, "version": version, **meta,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}}
    try:
        return write_files(base, arrays, meta)
    except (TypeError, ValueError) as e:  # metadata not JSON-serialisable (or NaN in it)
        raise ValueError(f"`metadata` must be JSON-serialisable with finite numbers ({e})") from None


def load_params(path: str | os.PathLike, meta: dict[str, Any], template: PyTree) -> PyTree:
    """The parameters of a file written by :func:`save_params` whose JSON ``meta`` was read
    (float32, checked against ``template``; the SHA-256, when recorded, must match)."""
    base = base_path(path)
    sha = meta.get("npz_sha256")
    if sha is not None and not isinstance(sha, str):
        raise ValueError(f"`path` {base}.json: field 'npz_sha256' must be a string")
    # files from before the digest was recorded have none
    return arrays_to_tree(template, read_npz(base, sha), "", f"`path` {base}.npz", params=True)


def key_to_json(key: Any, name: str = "key") -> dict[str, Any]:
    """A PRNG key (raw ``uint32`` or typed) as JSON: its data and implementation."""
    try:
        key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
        typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        data = jax.random.key_data(key) if typed else key
        impl = str(jax.random.key_impl(key)) if typed else None
    except Exception:  # noqa: BLE001
        raise ValueError(f"`{name}` must be a JAX PRNG key, got {type(key).__name__}") from None
    data = np.asarray(data)
    if data.dtype != np.uint32 or data.ndim != 1:
        raise ValueError(f"`{name}` must be a single JAX PRNG key (jax.random.key or PRNGKey), got shape "
                         f"{data.shape} and dtype {data.dtype}")
    return {"data": [int(v) for v in data], "impl": impl}


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_arrays(arrays: Iterable[Any]) -> str:
    """SHA-256 of the raw bytes (and shapes/dtypes) of a sequence of arrays."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _atomic_write(path: str, write) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_files(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                *, keep_previous: bool = False) -> tuple[str, str]:
    """Write ``<base>.npz`` then ``<base>.json`` (with ``npz_sha256``), each atomically.

    ``keep_previous``: first rename an existing pair to ``<base>.prev.npz`` / ``.prev.json``
    (a checkpoint survives a crash in the middle of the next save).
    """
    base = base_path(path)
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    npz, js = base + ".npz", base + ".json"
    if keep_previous and os.path.exists(npz) and os.path.exists(js):
        os.replace(npz, base + ".prev.npz")
        os.replace(js, base + ".prev.json")
    _atomic_write(npz, lambda f: np.savez(f, **arrays))
    meta = {**meta, "npz_sha256": _sha256_file(npz)}
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False).encode()
    _atomic_write(js, lambda f: f.write(text))
    return npz, js


def _existing(file: str) -> str:
    if not os.path.isfile(file):
        raise ValueError(f"`path`: {file} {'is not a file' if os.path.exists(file) else 'does not exist'}")
    return file


def read_json(path: str | os.PathLike, format_name: str | tuple[str, ...], version: int) -> dict[str, Any]:
    """Parse ``<base>.json`` and check its format name (one of them, given several) and version."""
    js = _existing(base_path(path) + ".json")
    try:
        with open(js, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise ValueError(f"`path`: cannot read {js} ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"`path`: {js} is not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None
    names = (format_name,) if isinstance(format_name, str) else format_name
    if not isinstance(meta, dict) or meta.get("format") not in names:
        raise ValueError(f"`path`: {js} is not a {' or '.join(names)} file")
    if meta.get("version") != version:
        raise ValueError(f"`path`: {js} has unsupported format version {meta.get('version')!r} (expected {version})")
    return meta


def read_npz(path: str | os.PathLike, sha256: str | None = None) -> dict[str, np.ndarray]:
    """All arrays of ``<base>.npz`` as host arrays, never unpickling.

    ``sha256``: the digest recorded in the JSON side-car; a mismatch means the file was
    corrupted or comes from another save.
    """
    npz_path = _existing(base_path(path) + ".npz")
    try:
        with open(npz_path, "rb") as f:
            head = f.read(4)
        digest = _sha256_file(npz_path) if sha256 is not None else None
    except OSError as e:
        raise ValueError(f"`path`: cannot read {npz_path} ({e.strerror or e})") from None
    if head not in _ZIP_MAGIC:
        raise ValueError(f"`path`: {npz_path} is not an .npz archive (corrupt or another kind of file)")
    if sha256 is not None and digest != sha256:
        raise ValueError(
            f"`path`: {npz_path} is corrupt or does not belong to its .json (SHA-256 mismatch; "
            "was a save interrupted?)"
        )
    out: dict[str, np.ndarray] = {}
    try:
        npz = np.load(npz_path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
        raise ValueError(f"`path`: {npz_path} is not a readable .npz archive ({type(e).__name__})") from None
    with npz:
        for name in npz.files:
            try:
                arr = npz[name]
            except ValueError as e:
                if "pickle" in str(e):
                    raise ValueError(f"`path`: array {name!r} in {npz_path} holds Python objects; "
                                     "probkit files contain plain numeric arrays only") from None
                raise ValueError(f"`path`: array {name!r} in {npz_path} is corrupt ({str(e)[:120]})") from None
            except Exception as e:  # noqa: BLE001 - BadZipFile (CRC), zlib.error, EOFError, OSError ...
                raise ValueError(f"`path`: array {name!r} in {npz_path} is corrupt ({type(e).__name__})") from None
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"`path`: array {name!r} in {npz_path} has dtype {arr.dtype}; expected numbers")
            out[name] = arr
    return out


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether ``<base>.json`` or its previous generation ``<base>.prev.json`` exists."""
    base = base_path(path)
    return os.path.exists(base + ".json") or os.path.exists(base + ".prev.json")


def read_checkpoint(path: str | os.PathLike, format_name: str, version: int) -> tuple[dict, dict, str]:
    """``(meta, arrays, base)`` of the newest intact checkpoint pair at ``path``.

    Tries ``<base>.*`` and, if that pair is missing or broken (a crash during a save), the
    previous generation ``<base>.prev.*`` with a warning; raises the first pair's
    ``ValueError`` if neither is intact.
    """

    def read_pair(base: str) -> tuple[dict, dict]:
        meta = read_json(base, format_name, version)
        sha = meta.get("npz_sha256")
        return meta, read_npz(base, sha if isinstance(sha, str) else "missing")

    base = base_path(path)
    try:
        return (*read_pair(base), base)
    except ValueError as first:
        prev = base + ".prev"
        if not os.path.exists(prev + ".json"):
            raise
        try:
            meta, arrays = read_pair(prev)
        except ValueError:
            raise first from None
        warnings.warn(f"checkpoint {base}.* is unusable ({first}); resuming from the previous one, {prev}.*",
                      RuntimeWarning, stacklevel=3)
        return meta, arrays, prev
