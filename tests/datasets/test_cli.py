"""The audit command end to end, on real data."""

import subprocess
import sys

import fiftyone as fo
from fiftyone_intrinsic.datasets.cli import main


def test_audit_medmnist_prints_the_report(shared_data, dataset_name, tmp_images, capsys):
    path = shared_data("medical/breastmnist_28.npz")
    code = main(["audit", str(path), "--name", dataset_name, "--images-dir", str(tmp_images), "--device", "cpu", "--top", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "780 samples, 2 classes" in out
    assert "pixels 28x28x1, [0, 1] (784 dims)" in out
    assert "conflicting duplicates (identical inputs, different labels): 1" in out
    assert "K_F = 5.18" in out
    assert out.count(str(tmp_images)) >= 6  # the three sharpest pairs name their files
    assert "TwoNN is far below MLE" in out  # BreastMNIST's near-duplicates
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.list_runs()) == {"intrinsic_dimension", "intrinsic_dimension_twonn", "label_sharpness"}


def test_audit_bad_source_exits_2_with_a_message(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fiftyone_intrinsic.datasets.cli", "audit", str(tmp_path / "nothing-here")],
        capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert "neither an existing FiftyOne dataset" in out.stderr
