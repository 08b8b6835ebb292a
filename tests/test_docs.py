"""The documentation site builds without warnings (``mkdocs build --strict``).

Measured: about 5 s of CPU, 15 s wall on a busy 2-core machine (< 20 s), so it is not marked slow. Skipped when the docs
tools (mkdocs, mkdocstrings-python, jupytext for the tutorial pages) are not installed.
"""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("jupytext")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # API pages are generated from the docstrings
    api = (site / "api" / "diagnostics" / "index.html").read_text(encoding="utf-8")
    for name in ("sliced_wasserstein", "mmd", "energy_distance", "to_inference_data", "weighted_summary", "plot_samples_on_density"):
        assert f'id="probkit.diagnostics.{name}"' in api or f'id="probkit.diagnostics.plots.{name}"' in api, name
    # one page per tutorial, listed on the tutorials page
    listing = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
    for path in sorted((ROOT / "tutorials").glob("*.py")):
        assert (site / "tutorials" / path.stem / "index.html").is_file(), path.name
        assert f'href="{path.stem}/"' in listing, path.name
