"""Execute the tutorials and cache them, with their outputs, for the docs site.

    python docs/hooks/execute_tutorials.py              # every tutorials/*.py whose cache is missing or stale
    python docs/hooks/execute_tutorials.py fkc dmcmc    # these ones (always re-run)
    python docs/hooks/execute_tutorials.py --check      # list missing/stale caches, exit 1 if any

Each ``tutorials/<name>.py`` (jupytext percent format) runs in a fresh ``python3`` Jupyter kernel
(matplotlib's inline backend, so every ``plt.show()`` becomes a PNG output) and is written to
``docs/notebooks/<name>.ipynb`` with the SHA-256 of its source in
``metadata.probkit.source_sha256``. The docs build (``docs/hooks/probkit_docs.py``) renders the
cached outputs and fails (``mkdocs build --strict``) when a cache is missing or its hash does not
match the tutorial, so the site never shows outputs of an older version of a tutorial. The test
suite executes the tutorials themselves (``tests/test_tutorials.py``).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIAL_DIR = ROOT / "tutorials"
CACHE_DIR = ROOT / "docs" / "notebooks"


def source_hash(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(path: pathlib.Path) -> pathlib.Path:
    return CACHE_DIR / f"{path.stem}.ipynb"


def cache_status(path: pathlib.Path) -> str:
    """``"ok"``, ``"missing"`` or ``"stale"`` for the cached notebook of tutorial ``path``."""
    cached = cache_path(path)
    if not cached.is_file():
        return "missing"
    import json

    meta = json.loads(cached.read_text(encoding="utf-8")).get("metadata", {}).get("probkit", {})
    return "ok" if meta.get("source_sha256") == source_hash(path) else "stale"


def execute(path: pathlib.Path, timeout: int = 1200) -> pathlib.Path:
    import jupytext
    import nbclient
    import nbformat

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_backup = {k: os.environ.get(k) for k in ("MPLBACKEND", "PYTHONPATH")}
    os.environ.pop("MPLBACKEND", None)  # the inline backend turns plt.show() into PNG outputs
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_backup["PYTHONPATH"] or "") if p)
    work = tempfile.mkdtemp(prefix=f"probkit_{path.stem}_")  # files the tutorial writes land here
    try:
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": work}})
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for cell in nb.cells:  # keep outputs, drop volatile metadata
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nb.metadata["probkit"] = {
        "source": f"tutorials/{path.name}",
        "source_sha256": source_hash(path),
        "executed": datetime.date.today().isoformat(),
        "seconds": round(seconds, 1),
    }
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = cache_path(path)
    nbformat.write(nb, str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="tutorial names (default: those whose cache is missing or stale)")
    ap.add_argument("--check", action="store_true", help="only report missing/stale caches")
    args = ap.parse_args(argv)
    paths = sorted(TUTORIAL_DIR.glob("*.py"))
    if args.check or not args.names:
        todo = [p for p in paths if cache_status(p) != "ok"]
        for p in todo:
            print(f"{p.name}: {cache_status(p)}")
        if args.check:
            return 1 if todo else 0
    else:
        todo = [TUTORIAL_DIR / f"{n.removesuffix('.py')}.py" for n in args.names]
        for p in todo:
            if not p.is_file():
                print(f"no tutorial {p}", file=sys.stderr)
                return 2
    for p in todo:
        t0 = time.perf_counter()
        out = execute(p)
        print(f"{p.name} -> {out.relative_to(ROOT)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
