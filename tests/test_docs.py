"""The documentation site builds without warnings (``mkdocs build --strict``), with the tutorials'
outputs and figures rendered.

Tutorial pages render the executed copies cached in ``docs/notebooks/`` (refresh with
``python docs/hooks/execute_tutorials.py``); the build fails while a copy is missing or older than
its tutorial, and this test checks that each tutorial page shows at least one figure that exists
in the built site. Measured: about 10 s of CPU (no tutorial is executed here; the tutorials
themselves run in tests/test_tutorials.py). Skipped when the docs tools (mkdocs, mkdocs-material,
mkdocstrings-python, jupytext) are not installed.
"""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("jupytext")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    hint = "\nIf a tutorial's executed copy is missing or stale: python docs/hooks/execute_tutorials.py NAME"
    assert proc.returncode == 0, proc.stdout + proc.stderr + hint
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "md-header" in index  # the Material theme
    # API pages are generated from the docstrings
    api = (site / "api" / "diagnostics" / "index.html").read_text(encoding="utf-8")
    for name in ("sliced_wasserstein", "mmd", "energy_distance", "to_inference_data", "weighted_summary", "plot_samples_on_density"):
        assert f'id="probkit.diagnostics.{name}"' in api or f'id="probkit.diagnostics.plots.{name}"' in api, name
    for page in ("design", "choosing"):
        assert (site / page / "index.html").is_file(), page
    # one page per tutorial, listed on the tutorials page, showing its printed output and figures
    listing = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
    for path in sorted((ROOT / "tutorials").glob("*.py")):
        page = site / "tutorials" / path.stem / "index.html"
        assert page.is_file(), path.name
        assert f'href="{path.stem}/"' in listing, path.name
        html = page.read_text(encoding="utf-8")
        figures = re.findall(r'<img[^>]+src="([^"]+\.png)"', html)
        assert figures, f"no figure on the page of tutorials/{path.name}"
        for src in figures:
            assert (page.parent / src).resolve().is_file(), (path.name, src)
        assert "output" in html, path.name  # printed output blocks
    # user docs stand alone: no pointer to a design document outside the site
    for html_path in site.rglob("*.html"):
        text = html_path.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text and "shared folder" not in text, html_path
