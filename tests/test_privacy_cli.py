"""``probkit privacy report`` / ``estimate``: outputs, and one-line errors with exit status 2."""
import json

import jax
import numpy as np
import pytest

from probkit.cli import main
from probkit.privacy import GaussianMechanism, simulate_scores


@pytest.fixture(scope="module")
def score_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scores")
    neg, pos = simulate_scores(jax.random.PRNGKey(3), GaussianMechanism(1.5), 2000, 2000)
    s = np.concatenate([neg, pos])
    lab = np.r_[np.zeros(2000, int), np.ones(2000, int)]
    (d / "scores.csv").write_text("score\n" + "\n".join(f"{v:.7g}" for v in s) + "\n")
    np.save(d / "labels.npy", lab)
    return d


def test_report_writes_png_and_json(score_files, tmp_path, capsys):
    out = tmp_path / "new" / "rep"  # missing folder: created
    rc = main(["privacy", "report", "--scores", str(score_files / "scores.csv"), "--labels", str(score_files / "labels.npy"),
               "--deltas", "1e-3,0.05", "--claim", "0.5,1e-2", "--out", str(out), "--pdf"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "P(eps > 0.5)" in text and "refuted" in text
    assert (tmp_path / "new" / "rep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "new" / "rep.pdf").read_bytes()[:4] == b"%PDF"
    rep = json.loads((tmp_path / "new" / "rep.json").read_text())
    assert rep["deltas"] == [1e-3, 1e-2, 0.05] and rep["n"] == 4000 and rep["honest"]
    v = rep["verdict"]
    assert v["claimed_eps"] == 0.5 and v["prob_eps_exceeds_claim"] > 0.99
    assert rep["eps_lower"][1] <= rep["eps_median"][1] <= rep["eps_upper"][1]


def _err(capsys):
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probkit: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize(
    "argv,name",
    [
        (["--fp", "-3", "--negatives", "100", "--fn", "3", "--positives", "100", "--delta", "1e-5"], "fp"),
        (["--fp", "3", "--negatives", "100", "--fn", "3", "--positives", "100", "--delta", "1.5"], "delta"),
        (["--fp", "3", "--negatives", "100", "--fn", "3", "--positives", "100", "--delta", "1e-5", "--level", "2"], "level"),
        (["--fp", "3", "--negatives", "100", "--fn", "3", "--positives", "100", "--delta", "1e-5", "--prior", "x"], "prior"),
    ],
)
def test_estimate_bad_values_exit_2(argv, name, capsys):
    assert main(["privacy", "estimate", *argv]) == 2
    assert name in _err(capsys)


def test_estimate_pure_dp_and_plot_into_missing_folder(tmp_path, capsys):
    png = tmp_path / "missing" / "eps.png"
    assert main(["privacy", "estimate", "--fp", "3", "--negatives", "100", "--fn", "30", "--positives", "100",
                 "--delta", "0", "--plot", str(png)]) == 0
    assert png.is_file() and "delta=0" in capsys.readouterr().out


def test_report_bad_inputs_exit_2(score_files, tmp_path, capsys):
    base = ["privacy", "report", "--out", str(tmp_path / "r")]
    scores, labels = str(score_files / "scores.csv"), str(score_files / "labels.npy")
    bad = tmp_path / "bad.csv"
    bad.write_text("1.0\nnan\n2.0\n3.0\n")
    lab4 = tmp_path / "lab4.npy"
    np.save(lab4, np.array([0, 1, 0, 2]))
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = [
        (["--scores", str(tmp_path / "none.csv"), "--labels", labels], "scores"),
        (["--scores", str(bad), "--labels", str(lab4)], "scores"),
        (["--scores", scores, "--labels", str(obj)], "pickle"),
        (["--scores", scores, "--labels", labels, "--deltas", "1e-3,2"], "deltas"),
        (["--scores", scores, "--labels", labels, "--claim", "1"], "claim"),
        (["--scores", scores, "--labels", labels, "--split", "1.5"], "split"),
    ]
    for argv, name in cases:
        assert main(base + argv) == 2, argv
        assert name in _err(capsys), argv
    good = tmp_path / "good.csv"
    good.write_text("0.1\n0.5\n0.2\n0.9\n")
    assert main(base + ["--scores", str(good), "--labels", str(lab4)]) == 2
    assert "labels" in _err(capsys)
