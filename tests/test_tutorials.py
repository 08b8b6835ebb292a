"""Every tutorial in tutorials/ is executed as a notebook (jupytext + nbclient).

* One test per ``tutorials/*.py`` (jupytext percent format), collected when pytest starts.
* A tutorial whose first lines (the first 40, jupytext header included) contain
  ``# probkit: slow`` is marked ``slow`` (excluded by default; run with ``-m slow``).
* Each runs in a fresh ``python3`` kernel, in a temporary working directory (figures and files
  land there), with ``MPLBACKEND=Agg`` and this checkout first on ``PYTHONPATH``; 600 s per cell.
"""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("*.py"))
SLOW_TAG = "probkit: slow"


def _params():
    for path in TUTORIALS:
        head = path.read_text(encoding="utf-8").splitlines()[:40]
        marks = [pytest.mark.slow] if any(SLOW_TAG in line for line in head) else []
        yield pytest.param(path, id=path.stem, marks=marks)


PARAMS = list(_params()) or [pytest.param(None, id="no-tutorials", marks=pytest.mark.skip(reason="tutorials/ is empty"))]


def _kernel_name() -> str:
    """The ``python3`` kernel (registered, or ipykernel's native spec); skip if neither exists."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:  # pragma: no cover - depends on the machine
        pytest.skip("no python3 Jupyter kernel: run `python -m ipykernel install --user`")
    return "python3"


@pytest.mark.parametrize("path", PARAMS)
def test_tutorial_executes(path, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    kernel = _kernel_name()
    monkeypatch.setenv("MPLBACKEND", "Agg")  # inherited by the kernel process
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
