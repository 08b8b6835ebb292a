"""`probkit demo`: the tour runs at tiny size, writes its figure and JSON, and every panel's metric
is within its documented tolerance (probkit.demo.TOLERANCES, scaled for the tiny size)."""
import json

import pytest

from probkit.cli import build_parser, main
from probkit.demo import PANELS, TOLERANCES, demo_target, run_demo


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0


def test_demo_tour_tiny(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path), "--size", "tiny", "--quiet", "--cache-dir", ""])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    png = (tmp_path / "tour.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert list(summary["panels"]) == list(PANELS)
    for name, res in summary["panels"].items():
        assert res["metric"] and res["checks"], name
        failed = [c for c in res["checks"] if not c["passed"]]
        assert not failed, (name, failed)
    fkc = summary["panels"]["fkc"]["cases"]
    # the FK weights matter: the unweighted anneal is far from p^2 (measured 1.5-1.8 vs FKC 0.2-0.9)
    assert fkc["anneal"]["sw2_unweighted"] > 1.5 and fkc["anneal"]["sw2_unweighted"] > fkc["anneal"]["sw2_fkc"]
    inv = summary["panels"]["inverse"]
    assert inv["methods"]["DPS"]["log_py_hat"] is None
    assert abs(inv["methods"]["twisted SMC"]["log_py_hat"] - inv["log_py_exact"]) <= 2 * TOLERANCES["inverse"]["logz_tol"]
    priv = summary["panels"]["privacy"]
    assert priv["credible_interval"][0] <= priv["true_epsilon"] <= priv["credible_interval"][1]
    ints = summary["panels"]["integrators"]["results"]
    assert ints["dpm_solver_2m"]["25"]["nfe"] == 25 and ints["euler_maruyama"]["5"]["nfe"] == 5
    out = capsys.readouterr().out
    assert "metric:" in out and "tour.png" in out


def test_demo_only_one_panel(tmp_path):
    summary = run_demo(tmp_path, only=("privacy",), size="tiny", progress=False)
    assert list(summary["panels"]) == ["privacy"]
    assert (tmp_path / "tour.png").is_file()


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="only"):
        run_demo(tmp_path, only=("rk45",), progress=False)
    with pytest.raises(ValueError, match="size"):
        run_demo(tmp_path, size="huge", progress=False)
    assert demo_target().num_components == 8
