"""The `probkit` command: help lists the commands, the demo writes a figure and a JSON summary."""
import json

import pytest

from probkit.cli import build_parser, main
from probkit.demo import demo_target, run_demo


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0


def test_demo_writes_figure_and_summary(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path), "--num-samples", "1000", "--steps", "5,40",
               "--methods", "euler_maruyama,dpm_solver_2m", "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    png = (tmp_path / "samples.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    res = summary["results"]
    assert set(res) == {"euler_maruyama", "dpm_solver_2m"}
    assert res["dpm_solver_2m"]["40"]["nfe"] == 40
    # more steps must help Euler-Maruyama on this target (5 steps is far from converged)
    assert res["euler_maruyama"]["40"]["sliced_wasserstein"] < res["euler_maruyama"]["5"]["sliced_wasserstein"]
    # converged solvers sit near the two-exact-samples level; 5 x is a generous ceiling at n = 1000
    assert res["dpm_solver_2m"]["40"]["sliced_wasserstein"] < 5 * summary["null_sliced_wasserstein"]
    assert "sliced Wasserstein" in capsys.readouterr().out


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="methods"):
        run_demo(tmp_path, methods=("rk45",), progress=False)
    with pytest.raises(ValueError, match="steps"):
        run_demo(tmp_path, steps=(0,), progress=False)
    assert demo_target().num_components == 8
