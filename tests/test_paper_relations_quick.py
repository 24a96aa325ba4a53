"""Smoke test of ``benchmarks/paper_relations.py --quick`` on the real sets (docs/science.md
§8): all eight rows, correlations in [-1, 1] inside their intervals, valid PNG figures; and
the correlations of ``benchmarks/relations.py`` against SciPy's."""

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from conftest import REPO, SHARED_DATA

SCRIPT = REPO / "benchmarks" / "paper_relations.py"
SETS = ("BreastMNIST", "PneumoniaMNIST", "MNIST 0v1", "MNIST 3v5", "Fashion-MNIST 0v1", "Fashion-MNIST 3v5",
        "CIFAR-10 0v1", "CIFAR-10 3v5")
NUMBER = r"([+-]?\d+\.\d+)"
INTERVAL = re.compile(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]")


def _relations_module():
    spec = importlib.util.spec_from_file_location("paper_relations_statistics", REPO / "benchmarks" / "relations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_correlations_match_scipy_and_hold_their_estimate():
    relations = _relations_module()
    rng = np.random.default_rng(0)
    x = rng.normal(size=8)
    y = 0.6 * x + rng.normal(size=8)
    y[3] = y[5]  # a tie: Spearman averages the ranks
    out = relations.correlate(x, y, n_resamples=3000)
    assert out["pearson"].estimate == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)
    assert out["spearman"].estimate == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    for c in out.values():
        assert -1 <= c.low <= c.estimate <= c.high <= 1
    # resamples that draw one set only have no coefficient: left out and counted
    assert out["pearson"].n_degenerate >= 0 and out["pearson"].n_resamples == 3000
    constant = relations.correlate(x, np.ones(8), n_resamples=100)
    assert np.isnan(constant["pearson"].estimate) and constant["pearson"].n_degenerate == 100


@pytest.mark.slow
def test_quick_run_prints_every_set_correlations_and_figures(tmp_path):
    if not SHARED_DATA.exists():
        pytest.skip(f"real image data not available: {SHARED_DATA} is missing")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()

    rows = [line for line in lines if line.startswith("| ") and line.split(" | ")[0][2:] in SETS]
    assert sorted(line.split(" | ")[0][2:] for line in rows) == sorted(SETS)
    for line in rows:
        # d_data inside its interval, finite K_F
        estimate, low, high = map(float, INTERVAL.search(line).groups())
        assert low <= estimate <= high and estimate > 0

    start = lines.index("| relation | Pearson r [95% CI] | Spearman ρ [95% CI] | resamples left out | paper |")
    relation_rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break  # the end of the correlation table
        relation_rows.append(line)
    names = [line.split(" | ")[0][2:] for line in relation_rows]
    assert {"Δloss vs K_F", "R̂ vs K_F", "exponent vs −1/d_data"} <= set(names)
    for line in relation_rows:
        cells = line.split(" | ")
        for cell in cells[1:3]:
            estimate, low, high = map(float, INTERVAL.fullmatch(cell).groups())
            assert -1 <= low <= estimate <= high <= 1, line

    figures = [pathlib_line.strip()[2:] for pathlib_line in lines if pathlib_line.strip().endswith(".png")]
    assert len(figures) == 3
    for figure in figures:
        with open(figure, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", figure
        from PIL import Image

        with Image.open(figure) as image:
            image.verify()
            assert image.size[0] > 300 and image.size[1] > 200
