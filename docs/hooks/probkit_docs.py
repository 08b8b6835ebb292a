"""MkDocs hooks for the probkit site (registered in mkdocs.yml under ``hooks:``).

* **Tutorials.** Every ``tutorials/*.py`` (jupytext percent format) becomes a page
  ``tutorials/<name>.md`` with its outputs: markdown cells as text, code cells as Python blocks,
  each followed by the cell's printed output and figures, taken from the executed copy cached in
  ``docs/notebooks/<name>.ipynb`` (made by ``python docs/hooks/execute_tutorials.py``; figures
  become ``tutorials/<name>_files/figure-<i>.png``). A missing cache, or one whose recorded
  SHA-256 differs from the tutorial's, is a warning, so ``mkdocs build --strict`` fails until the
  cache is refreshed. Pages are listed under *Tutorials* in the navigation; ``docs/tutorials.md``
  gets a table of them (title and first paragraph) where it says ``<!-- probkit:tutorials -->``.
* **Guides.** A top-level ``docs/*.md`` page that the navigation in mkdocs.yml does not list is
  added under *Guides*, titled by its first heading (``privacy.md`` as "Privacy guide"), so that
  a guide written by anyone appears without editing mkdocs.yml.

Tutorial markdown is written to be read beside the code (GitHub, Jupyter), so its relative links
would break on the site: they are rendered as plain text. Needs ``jupytext`` (docs extra).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import pathlib
import re
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIAL_DIR = ROOT / "tutorials"
PLACEHOLDER = "<!-- probkit:tutorials -->"
NOTEBOOK_DIR = ROOT / "docs" / "notebooks"
ORDER = ["diffusion", "fkc", "dmcmc", "inverse_problems", "inverse", "network_prior", "privacy"]  # reading order; others follow
GUIDE_TITLES = {"privacy.md": "Privacy guide"}
log = logging.getLogger("mkdocs.plugins.probkit_docs")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RELATIVE_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?!https?://|mailto:|#)([^)]+)\)")


def _tutorials() -> list[pathlib.Path]:
    paths = sorted(TUTORIAL_DIR.glob("*.py"))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def _read(path: pathlib.Path):
    import jupytext

    return jupytext.read(path)


def _title_and_summary(nb: Any, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        title, summary, body = fallback, "", []
        for i, line in enumerate(lines):
            if line.startswith("# "):
                title = line[2:].strip()
                body = lines[i + 1:]
                break
        else:
            body = lines
        para: list[str] = []
        for line in body:
            if not line.strip():
                if para:
                    break
                continue
            if line.startswith("#"):
                break
            para.append(line.strip())
        summary = _RELATIVE_LINK.sub(lambda m: m.group(2), " ".join(para))
        return title, _first_sentences(summary)
    return fallback, ""


def _first_sentences(text: str, limit: int = 220) -> str:
    """Whole sentences of ``text`` up to about ``limit`` characters (at least one)."""
    parts = re.split(r"(?<=[.!?])\s+", text)
    out = parts[0]
    for part in parts[1:]:
        if len(out) + 1 + len(part) > limit:
            break
        out += " " + part
    return out


def _cached_outputs(path: pathlib.Path) -> list[list[dict]] | None:
    """Outputs of each code cell of the cached executed notebook, or None (warned) if the cache
    is missing or stale."""
    cached = NOTEBOOK_DIR / f"{path.stem}.ipynb"
    hint = f"run `python docs/hooks/execute_tutorials.py {path.stem}`"
    if not cached.is_file():
        log.warning(f"tutorials/{path.name}: no executed copy in docs/notebooks/ ({hint})")
        return None
    nb = json.loads(cached.read_text(encoding="utf-8"))
    if nb.get("metadata", {}).get("probkit", {}).get("source_sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
        log.warning(f"tutorials/{path.name} changed since docs/notebooks/{cached.name} was executed ({hint})")
        return None
    return [c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _text(value: Any) -> str:
    return _ANSI.sub("", "".join(value) if isinstance(value, list) else str(value)).rstrip()


def _render_outputs(outputs: list[dict], stem: str, figures: list[bytes]) -> list[str]:
    """Markdown for one cell's outputs; PNGs are appended to ``figures`` and linked."""
    parts: list[str] = []
    stream: list[str] = []

    def flush():
        if stream:
            parts.append('```text title="output"\n' + "\n".join(stream) + "\n```")
            stream.clear()

    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stdout":
            text = _text(out.get("text", ""))
            if text:
                stream.append(text)
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "image/png" in data:
                flush()
                figures.append(base64.b64decode(_text(data["image/png"])))
                parts.append(f"![figure {len(figures)}]({stem}_files/figure-{len(figures)}.png)")
            elif "text/plain" in data:
                text = _text(data["text/plain"])
                if text and not text.startswith("<Figure size"):
                    stream.append(text)
        elif kind == "error":
            flush()
            parts.append("```text title=\"error\"\n" + _text(out.get("traceback", "")) + "\n```")
    flush()
    return parts


def _page_markdown(path: pathlib.Path, nb: Any, figures: list[bytes] | None = None) -> str:
    figures = [] if figures is None else figures
    outputs = _cached_outputs(path)
    shown = "outputs and figures below come from an executed copy, `docs/notebooks/" + path.stem + ".ipynb`"
    note = (f"*Source: `tutorials/{path.name}`. Run it with `python tutorials/{path.name}` or open it as a "
            f"notebook with `jupytext --to notebook tutorials/{path.name}`; "
            + (shown if outputs is not None else "outputs are not available") + ".*")
    out: list[str] = []
    code_index = 0
    for cell in nb.cells:
        src = cell.source.strip()
        if not src:
            continue
        if cell.cell_type == "markdown":
            # relative links -> "text (`target`)"; relative images are dropped
            src = _RELATIVE_LINK.sub(lambda m: "" if m.group(1) else f"{m.group(2)} (`{m.group(3)}`)", src)
            if not out and src.startswith("# "):  # keep the title first, then the note
                title, _, rest = src.partition("\n")
                out += [title, note] + ([rest.strip()] if rest.strip() else [])
                continue
            out.append(src)
        elif cell.cell_type == "code":
            out.append(f"```python\n{src}\n```")
            if outputs is not None and code_index < len(outputs):
                out += _render_outputs(outputs[code_index], path.stem, figures)
            code_index += 1
    if not out or not out[0].startswith("# "):
        out = [f"# {path.stem}", note, *out]
    return "\n\n".join(out) + "\n"


def _nav_pages(nav: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            found |= _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _nav_pages(value)
    return found


def _first_heading(path: pathlib.Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ").capitalize()


def on_config(config, **kwargs):
    nav = config["nav"] or []
    tutorial_items = [{_title_and_summary(_read(p), p.stem)[0]: f"tutorials/{p.stem}.md"} for p in _tutorials()]
    for i, item in enumerate(nav):
        if isinstance(item, dict) and "Tutorials" in item:
            nav[i] = {"Tutorials": ["tutorials.md", *tutorial_items]}
    listed = _nav_pages(nav)
    docs_dir = pathlib.Path(config["docs_dir"])
    extra = [p for p in sorted(docs_dir.glob("*.md")) if p.name not in listed]
    if extra:
        guides = next((item for item in nav if isinstance(item, dict) and "Guides" in item), None)
        if guides is None:
            guides = {"Guides": []}
            api_pos = next((i for i, it in enumerate(nav) if isinstance(it, dict) and "API" in it), len(nav))
            nav.insert(api_pos, guides)
        guides["Guides"].extend({GUIDE_TITLES.get(p.name, _first_heading(p)): p.name} for p in extra)
    config["nav"] = nav
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for path in _tutorials():
        figures: list[bytes] = []
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=_page_markdown(path, _read(path), figures)))
        for i, png in enumerate(figures, 1):
            files.append(File.generated(config, f"tutorials/{path.stem}_files/figure-{i}.png", content=png))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    if PLACEHOLDER not in markdown:
        return markdown
    rows = ["| tutorial | what it shows |", "| --- | --- |"]
    for path in _tutorials():
        title, summary = _title_and_summary(_read(path), path.stem)
        rows.append(f"| [{title}](tutorials/{path.stem}.md) | {summary.replace('|', '&#124;')} |")
    table = "\n".join(rows) if len(rows) > 2 else "*No tutorials yet.*"
    return markdown.replace(PLACEHOLDER, table)
