"""MkDocs hooks for the probkit site (registered in mkdocs.yml under ``hooks:``).

* **Tutorials.** Every ``tutorials/*.py`` (jupytext percent format) becomes a page
  ``tutorials/<name>.md`` (markdown cells as text, code cells as Python blocks; outputs are not
  rendered — the test suite executes the tutorials), listed under *Tutorials* in the navigation;
  ``docs/tutorials.md`` gets a table of them (title and first paragraph) where it says
  ``<!-- probkit:tutorials -->``.
* **Guides.** A top-level ``docs/*.md`` page that the navigation in mkdocs.yml does not list is
  added under *Guides*, titled by its first heading (``privacy.md`` as "Privacy guide"), so that
  a guide written by anyone appears without editing mkdocs.yml.

Tutorial markdown is written to be read beside the code (GitHub, Jupyter), so its relative links
would break on the site: they are rendered as plain text. Needs ``jupytext`` (docs extra).
"""
from __future__ import annotations

import pathlib
import re
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIAL_DIR = ROOT / "tutorials"
PLACEHOLDER = "<!-- probkit:tutorials -->"
ORDER = ["diffusion", "fkc", "dmcmc", "inverse_problems", "inverse", "privacy"]  # reading order; others follow
GUIDE_TITLES = {"privacy.md": "Privacy guide"}
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


def _page_markdown(path: pathlib.Path, nb: Any) -> str:
    note = (f"*Source: `tutorials/{path.name}`. Run it with `python tutorials/{path.name}` or open it as a "
            f"notebook with `jupytext --to notebook tutorials/{path.name}`; outputs are not shown here.*")
    out: list[str] = []
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
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=_page_markdown(path, _read(path))))
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
