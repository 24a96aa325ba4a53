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


def test_distributed_audit_under_torchrun_stores_once(shared_data, dataset_name, tmp_images):
    """Two gloo ranks: rank 0 imports and stores, both measure; the stored K_F is the
    single-process one (test above), and the report is printed once."""
    path = shared_data("medical/breastmnist_28.npz")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "fiftyone_intrinsic.datasets.cli", "audit", str(path), "--name", dataset_name,
        "--images-dir", str(tmp_images), "--device", "cpu", "--top", "3", "--distributed",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("K_F = 5.18") == 1
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.list_runs()) == {"intrinsic_dimension", "intrinsic_dimension_twonn", "label_sharpness"}
    results = dataset.load_run_results("label_sharpness")
    assert 5.175 <= results.k_f < 5.195 and len(results.pairs) == 3
    assert len(dataset.match_tags("label_sharpness:sharp_pair")) >= 3
