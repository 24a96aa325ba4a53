"""The audit command end to end, on real data."""

import subprocess
import sys

import numpy as np
import pytest

import fiftyone as fo
import fiftyone_intrinsic as fi
from conftest import REPO, dataset_contents, snapshot
from fiftyone_intrinsic.datasets.cli import main
from fiftyone_intrinsic.datasets.importers import import_arrays


def test_audit_medmnist_prints_the_report(shared_data, dataset_name, tmp_images, capsys):
    path = shared_data("medical/breastmnist_28.npz")
    code = main(["audit", str(path), "--name", dataset_name, "--images-dir", str(tmp_images), "--device", "cpu",
                 "--top", "3", "--split", "all"])
    out = capsys.readouterr().out
    assert code == 0
    assert "780 samples, 2 classes" in out and "Audited: all 780 samples" in out
    assert "pixels 28x28x1, [0, 1] (784 dims)" in out
    assert "conflicting duplicates (identical inputs, different labels): 1" in out
    assert "K_F = 5.18" in out
    assert out.count(str(tmp_images)) >= 6  # the three sharpest pairs name their files
    assert "TwoNN is far below MLE" in out  # BreastMNIST's near-duplicates
    assert "[no interval: collapsed far below MLE" in out  # no tight interval around a wrong number
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
    """Two gloo ranks: rank 0 imports and stores, both measure (the train split, and the
    search across splits); the stored K_F is the single-process one, and the report is
    printed once."""
    path = shared_data("medical/breastmnist_28.npz")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "fiftyone_intrinsic.datasets.cli", "audit", str(path), "--name", dataset_name,
        "--images-dir", str(tmp_images), "--device", "cpu", "--top", "3", "--distributed",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, without_progress_bars(out.stderr)[-6000:]
    assert out.stdout.count("K_F = 1.81671") == 1  # train: 546 images (single process: below)
    assert out.stdout.count("Audited split: 'train' (546 of 780 samples") == 1
    assert "images of other splits identical to one of 'train': 1;" in out.stdout
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.list_runs()) == {"intrinsic_dimension", "intrinsic_dimension_twonn", "label_sharpness"}
    results = dataset.load_run_results("label_sharpness")
    assert results.k_f == pytest.approx(1.81671, abs=1e-5) and len(results.pairs) == 3
    assert len(dataset.match_tags("label_sharpness:sharp_pair")) >= 3


def without_progress_bars(text: str) -> str:
    """``text`` less the progress bars' lines (they hide the errors of a failed job)."""
    return "\n".join(line for line in text.replace("\r", "\n").splitlines() if "‰/s" not in line and line.strip())


@pytest.mark.parametrize("failing_rank", [1, 0])
def test_a_rank_that_crashes_mid_search_stops_the_job_and_its_run_is_removed(
    shared_data, dataset_name, tmp_images, failing_rank
):
    """One rank raises a RuntimeError (a crash, not a checked bad input) as the K_F search
    starts, while the other is already inside the search's collectives. The job used to
    hang there for good (the failing rank waited at a final barrier the other never
    reached). Now it ends with an error naming the crash, the other rank says why it
    stopped, and rank 0 removes its incomplete K_F run: the runs that finished stay."""
    path = shared_data("medical/breastmnist_28.npz")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(REPO / "tests" / "datasets" / "failing_rank.py"), str(failing_rank),
        "audit", str(path), "--name", dataset_name, "--images-dir", str(tmp_images), "--device", "cpu",
        "--top", "3", "--distributed",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode != 0
    errors = without_progress_bars(out.stderr)
    assert f"RuntimeError: simulated crash on rank {failing_rank}" in errors, errors[-6000:]
    assert f"rank {1 - failing_rank}: stopped because another rank of the job failed" in errors, errors[-6000:]
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.list_runs()) == {"intrinsic_dimension", "intrinsic_dimension_twonn"}
    assert not [tag for tag in dataset.distinct("tags") if tag.startswith("label_sharpness")]
    assert not [view for view in dataset.list_saved_views() if view.startswith("label_sharpness")]


# --------------------------------------------------------------------------- nothing lost


def tiny_medmnist(path, n=60, seed=0):
    """A small file in the MedMNIST layout (8 x 8 uint8 images, two classes)."""
    rng = np.random.default_rng(seed)
    np.savez(path, train_images=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
             train_labels=rng.integers(0, 2, (n, 1)))
    return path


def test_audit_leaves_an_unrelated_dataset_of_that_name_intact(users_dataset, tmp_path, capsys):
    """`audit X.npz` deleted the user's dataset X and imported the file in its place."""
    name = users_dataset.name
    source = tiny_medmnist(tmp_path / f"{name}.npz")
    before = dataset_contents(name)
    code = main(["audit", str(source), "--images-dir", str(tmp_path / "png"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"A FiftyOne dataset named '{name}' already exists (3 samples)" in err
    assert "--name" in err and "--overwrite" in err
    assert dataset_contents(name) == before
    assert fo.load_dataset(name).list_runs() == [] and not (tmp_path / "png").exists()


def test_audit_twice_reuses_its_import_and_overwrite_replaces_it(tmp_path, dataset_name, capsys):
    source = tiny_medmnist(tmp_path / "tiny.npz")
    args = ["audit", str(source), "--name", dataset_name, "--images-dir", str(tmp_path / "png"),
            "--device", "cpu", "--top", "2", "--num-workers", "1"]
    assert main(args) == 0
    ids = fo.load_dataset(dataset_name).values("id")
    assert main(args) == 0, capsys.readouterr().err  # a re-import would meet its own files and stop
    assert fo.load_dataset(dataset_name).values("id") == ids
    replaced = args[:5] + [str(tmp_path / "png2")] + args[6:] + ["--overwrite"]
    assert main(replaced) == 0
    dataset = fo.load_dataset(dataset_name)
    assert len(dataset) == 60 and set(dataset.values("id")).isdisjoint(ids)
    assert len(list((tmp_path / "png").glob("*.png"))) == 60
    assert "60 samples, 2 classes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--k", "1"], "k"),
        (["--top", "0"], "top"),
        (["--size", "0"], "size"),
        (["--duplicate-tolerance", "-1"], "duplicate_tolerance"),
        (["--duplicate-tolerance", "1"], "duplicate_tolerance"),  # a fraction now, not a distance
        (["--max-merged-fraction", "0"], "max_merged_fraction"),
        (["--max-merged-fraction", "1.5"], "max_merged_fraction"),
        (["--num-workers", "0"], "num_workers"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--app", "--port", "70000"], "--port 70000 is not a TCP port"),
        (["--label-field", "labels"], "--label-field 'labels': a source that is imported"),
        (["--embeddings-field", "clip"], "--embeddings-field 'clip': a source that is imported"),
        (["--name", "../../escape"], "'../../escape' is not safe as a folder name"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_imported(tmp_path, dataset_name, capsys, flags, message):
    source = tiny_medmnist(tmp_path / "tiny.npz")
    before = set(fo.list_datasets())
    code = main(["audit", str(source), "--name", dataset_name, "--images-dir", str(tmp_path / "png"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert set(fo.list_datasets()) == before and not (tmp_path / "png").exists()


def test_a_bad_label_field_is_refused_before_any_run_is_written(tmp_path, dataset_name, capsys):
    """The label field was checked only after the d_data runs had been written."""
    rng = np.random.default_rng(0)
    dataset = import_arrays(rng.integers(0, 256, (30, 6, 6), dtype=np.uint8), [0, 1] * 15,
                            name=dataset_name, images_dir=tmp_path / "png")
    before = snapshot(dataset)
    for field, message in [("nope", "'nope' does not exist"), ("filepath", "not Classification")]:
        code = main(["audit", dataset_name, "--label-field", field, "--device", "cpu"])
        assert code == 2
        assert message in capsys.readouterr().err
        assert snapshot(dataset) == before and dataset.list_runs() == []


def test_audit_refuses_to_merge_many_near_duplicates_unless_allowed_and_counts_them(tmp_path, dataset_name, capsys):
    """12 of 60 images are near-copies (one pixel changed): merging them is refused by
    default with the flag to change, and nothing is stored; allowed, the report counts them."""
    images = np.random.default_rng(0).integers(1, 255, (60, 8, 8), dtype=np.uint8)
    images[48:] = images[:12]
    images[48:, 0, 0] += 1
    source = tmp_path / "near.npz"
    np.savez(source, train_images=images, train_labels=np.arange(60).reshape(-1, 1) % 2)
    audit = ["audit", str(source), "--name", dataset_name, "--images-dir", str(tmp_path / "png"),
             "--device", "cpu", "--duplicate-tolerance", "0.1"]
    assert main(audit) == 2
    err = capsys.readouterr().err
    assert "would merge 12 of the 60 distinct samples (20.0%)" in err
    assert "raise max_merged_fraction to 0.2." in err
    assert fo.load_dataset(dataset_name).list_runs() == []  # imported, nothing measured
    assert main([*audit, "--max-merged-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "near-duplicates merged: 12 of 60 distinct samples (20.0%)" in out
    assert "0.1 x the median nearest-neighbour distance" in out


def test_audit_measures_the_train_split_and_reports_images_of_other_splits_close_to_it(
        shared_data, dataset_name, tmp_images, capsys):
    """BreastMNIST's splits are tags: the audit measures train, and lists the val and test
    images identical to a train image, or closer to one than train's sharpest pair (checked
    against a float64 brute force on the same pixels)."""
    path = shared_data("medical/breastmnist_28.npz")
    code = main(["audit", str(path), "--name", dataset_name, "--images-dir", str(tmp_images), "--device", "cpu", "--top", "2"])
    out = capsys.readouterr().out
    assert code == 0
    dataset = fo.load_dataset(dataset_name)
    train = dataset.match_tags("train")
    kf = fi.load_intrinsic_results(dataset, "label_sharpness")
    assert kf.n_samples == len(train) == 546 and "546 samples, 2 classes" in out
    assert kf.k_f == pytest.approx(1.81671, abs=1e-5)  # as the distributed audit above finds
    assert fi.load_intrinsic_results(dataset, "intrinsic_dimension").n_samples == 546

    with np.load(path) as archive:
        inside = archive["train_images"].reshape(546, -1) / 255.0
        outside = np.concatenate([archive["val_images"], archive["test_images"]]).reshape(234, -1) / 255.0
    nearest = np.sqrt(((outside[:, None, :] - inside[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    identical, closer = int((nearest == 0).sum()), int(((nearest > 0) & (nearest < kf.min_distance)).sum())
    assert identical >= 1 and closer >= 1  # BreastMNIST leaks across its splits
    assert "Audited split: 'train' (546 of 780 samples; --split all audits every sample)." in out
    assert (f"images of other splits identical to one of 'train': {identical}; closer to one than "
            f"'train''s sharpest pair ({kf.min_distance:.4g}): {closer}") in out

    before = snapshot(dataset)
    assert main(["audit", dataset_name, "--split", "validation", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--split 'validation': no sample" in err and "['test', 'train', 'val']" in err
    assert snapshot(dataset) == before
