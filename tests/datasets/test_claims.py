"""Runs that never lose or mix data: an atomic claim of the run key between processes,
names checked up front, complete-or-visibly-not, an overwrite that keeps the old run until
the new one is complete, runs registered on their view, and rename.

Everything runs against FiftyOne's real embedded MongoDB; the concurrency and crash tests
start real processes (tests/datasets/run_worker.py)."""

import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

import fiftyone as fo
import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.claims import REPLACEMENT_SUFFIX
from fiftyone_intrinsic.datasets.schema import SHARPNESS
from fiftyone_intrinsic.datasets.summary import summarize_dataset

from conftest import REPO, snapshot

WORKER = pathlib.Path(__file__).with_name("run_worker.py")
EMBEDDINGS = {"embeddings_field": "emb"}


@pytest.fixture
def embedded(dataset_name, rng):
    """300 samples with 16-D embeddings in two classes; every other sample tagged train."""
    dataset = fo.Dataset(dataset_name)
    emb = rng.normal(size=(300, 16))
    dataset.add_samples([
        fo.Sample(
            filepath=f"/nonexistent/{i}.png", emb=emb[i].tolist(), tags=["train"] if i % 2 else [],
            ground_truth=fo.Classification(label="ab"[i % 3 == 0]),
        )
        for i in range(300)
    ])
    return dataset


def kf(samples, key="kf", **kwargs):
    return fi.compute_label_sharpness(
        samples, "ground_truth", run_key=key, top=5, features=EMBEDDINGS, device="cpu",
        progress=lambda f, s: None, **kwargs,
    )


def leftovers(dataset, *prefixes):
    """Fields, tags, saved views and runs whose name starts with one of ``prefixes``."""
    dataset.reload()
    names = [
        *dataset.get_field_schema(), *dataset.count_sample_tags(), *dataset.list_saved_views(),
        *dataset.list_runs(),
    ]
    return sorted(n for n in names if n.startswith(prefixes))


def start_workers(name, key, delays, *flags, pause=2.0):
    """Start one worker per delay; they begin computing at a common time plus their delay."""
    start = time.time() + 12.0  # every worker has imported FiftyOne by then
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), name, key, str(start + delay), str(pause), *flags],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for delay in delays
    ]


def outcomes(workers):
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"worker printed no result (rc {worker.returncode}): {err[-2000:]}"
        results.append(json.loads(lines[-1]))
    return results


@pytest.mark.parametrize("delays", [(0.0, 0.0), (0.0, 0.7)], ids=["at-once", "0.7s-apart"])
def test_two_processes_one_run_key_leave_exactly_one_complete_run(embedded, delays):
    results = outcomes(start_workers(embedded.name, "kf", delays))

    assert sum(r["ok"] for r in results) == 1, results
    loser = next(r for r in results if not r["ok"])
    assert "kf" in loser["error"] and ("claimed" in loser["error"] or "incomplete" in loser["error"]), loser
    embedded.reload()
    assert fi.list_intrinsic_runs(embedded) == ["kf"]
    assert fi.list_intrinsic_runs(embedded, status="incomplete") == []
    stored = fi.load_intrinsic_results(embedded, "kf")
    assert stored.k_f == next(r["k_f"] for r in results if r["ok"])
    assert embedded.count_sample_tags().get("kf:sharp_pair", 0) > 0

    fi.delete_intrinsic_run(embedded, "kf")
    assert leftovers(embedded, "kf") == []


def test_a_killed_process_leaves_a_visibly_incomplete_run_that_deletes_cleanly(embedded):
    before = snapshot(embedded)
    (worker,) = start_workers(embedded.name, "kf", [0.0], "--kill-after-first-write", pause=0.0)
    worker.communicate(timeout=240)
    assert worker.returncode == -9  # SIGKILL, in the middle of writing

    embedded.reload()
    assert fi.list_intrinsic_runs(embedded) == []
    assert fi.list_intrinsic_runs(embedded, status="incomplete") == ["kf"]
    written = SHARPNESS.names("kf").field("distance")
    assert embedded.has_sample_field(written)  # the write had begun
    with pytest.raises(ValueError, match="incomplete.*delete"):
        fi.load_intrinsic_results(embedded, "kf")
    summary = summarize_dataset(embedded)  # the panel's summary must not fail on it
    assert summary.incomplete == ["kf"] and summary.sharpness is None
    with pytest.raises(ValueError, match="incomplete"):
        kf(embedded, overwrite=True)  # nobody silently takes over a run that may be live

    fi.delete_intrinsic_run(embedded, "kf")
    assert snapshot(embedded) == before
    kf(embedded)
    assert fi.list_intrinsic_runs(embedded) == ["kf"]


def test_user_owned_view_and_tag_survive_runs_that_fail_or_are_deleted(embedded):
    ids = embedded.values("id")
    embedded.save_view("kf_sharp_pairs", embedded.limit(3))
    embedded.select(ids[:4]).tag_samples("kf2:sharp_pair")
    before = snapshot(embedded)

    # names the user owns: both runs are refused before anything is written
    for key, name in (("kf", "saved view 'kf_sharp_pairs'"), ("kf2", "tag 'kf2:sharp_pair'")):
        with pytest.raises(ValueError, match=name):
            kf(embedded, key)
        assert snapshot(embedded) == before

    # a run that fails after claiming its key (NaN embeddings) removes only its own run
    embedded.set_values("emb", [[float("nan")] * 16] + embedded.values("emb")[1:])
    with pytest.raises(ValueError, match="NaN|finite"):
        kf(embedded, "kf3")
    assert snapshot(embedded) == before

    # a run created and deleted: the user tags more samples with its tag meanwhile
    embedded.set_values("emb", np.random.default_rng(1).normal(size=(300, 16)).tolist())
    kf(embedded, "kf4")
    mine = [i for i in ids[-3:]]
    embedded.select(mine).tag_samples("kf4:sharp_pair")
    run_tagged = set(fi.get_intrinsic_run_info(embedded, "kf4").config.tagged["kf4:sharp_pair"])
    fi.delete_intrinsic_run(embedded, "kf4")
    embedded.reload()
    still_tagged = set(embedded.match_tags("kf4:sharp_pair").values("id"))
    assert still_tagged == set(mine) - run_tagged
    assert embedded.has_saved_view("kf_sharp_pairs") and len(embedded.load_saved_view("kf_sharp_pairs")) == 3
    assert embedded.count_sample_tags()["kf2:sharp_pair"] == 4


def test_a_failed_overwrite_keeps_the_old_run_and_a_good_one_replaces_it(embedded):
    first = kf(embedded)
    kept = snapshot(embedded)
    good = embedded.values("emb")

    embedded.set_values("emb", [[float("nan")] * 16] + good[1:])
    with pytest.raises(ValueError):
        kf(embedded, overwrite=True)
    assert snapshot(embedded) == kept
    assert fi.load_intrinsic_results(embedded, "kf").k_f == first.k_f

    embedded.set_values("emb", (2.0 * np.asarray(good)).tolist())  # distances double: K_F halves
    second = kf(embedded, overwrite=True)
    assert second.k_f == pytest.approx(first.k_f / 2, rel=1e-12)
    assert fi.load_intrinsic_results(embedded, "kf").k_f == second.k_f
    assert snapshot(embedded) == kept  # the same names, owned by the new run
    assert leftovers(embedded, "kf" + REPLACEMENT_SUFFIX) == []
    distances = np.array(embedded.values(SHARPNESS.names("kf").field("distance")), dtype=float)
    np.testing.assert_array_equal(distances, second.nearest_distance)


def test_a_run_remembers_its_view_and_moves_with_rename(embedded):
    train = embedded.match_tags("train")
    kf(train, "kf")
    assert embedded.load_run_view("kf").values("id") == train.values("id")

    embedded.rename_run("kf", "sharp")  # FiftyOne's own rename moves fields, tags and view
    embedded.reload()
    assert leftovers(embedded, "kf") == []
    names = SHARPNESS.names("sharp")
    assert embedded.has_sample_field(names.field("distance"))
    assert embedded.count_sample_tags().get(names.tag("pair"), 0) > 0
    assert len(fi.load_sharpest_pairs_view(embedded, "sharp")) > 0
    assert fi.load_intrinsic_results(embedded, "sharp").n_samples == len(train)

    fi.rename_intrinsic_run(embedded, "sharp", "kf_train")
    with pytest.raises(ValueError, match="already exists"):
        kf(embedded, "other")
        fi.rename_intrinsic_run(embedded, "kf_train", "other")
    fi.delete_intrinsic_run(embedded, "kf_train")
    fi.delete_intrinsic_run(embedded, "other")
    assert leftovers(embedded, "kf", "sharp", "other") == []


def test_the_runs_command_lists_incomplete_runs_and_deletes_them(embedded, capsys):
    from fiftyone_intrinsic.datasets.claims import claim_run
    from fiftyone_intrinsic.datasets.cli import main

    before = snapshot(embedded)
    kf(embedded.match_tags("train"), "kf")
    claim_run(embedded, "orphan", SHARPNESS)  # what a process killed while computing leaves

    assert main(["runs", embedded.name]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line.strip() and not line.startswith(("Incomplete", "\n"))}
    assert rows["kf"][1:3] == ["label_sharpness", "complete"] and rows["kf"][-3:] == ["150", "of", "300"]
    assert rows["orphan"][1:3] == ["label_sharpness", "incomplete"]
    assert f"fiftyone-intrinsic runs {embedded.name} --delete KEY" in table

    assert main(["runs", embedded.name, "--delete", "orphan"]) == 0
    assert "Deleted run 'orphan' (incomplete)" in capsys.readouterr().out
    assert main(["runs", embedded.name, "--delete", "kf"]) == 0
    assert snapshot(embedded) == before
    assert main(["runs", embedded.name, "--delete", "kf"]) == 2
    assert "No fiftyone_intrinsic run with key 'kf'" in capsys.readouterr().err


def test_threads_of_one_process_read_a_run_s_results_at_once(embedded):
    """The App server runs a panel's events (on_load, on_change_view) in threads that share
    one dataset object; FiftyOne's results file then had one read position for all of them
    and a reader got '' (AttributeError: 'str' object has no attribute 'decode')."""
    from concurrent.futures import ThreadPoolExecutor

    kf(embedded, key="label_sharpness")
    expected = fi.load_intrinsic_results(embedded, "label_sharpness").k_f
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: fi.load_intrinsic_results(embedded, "label_sharpness").k_f, range(64)))
    assert values == [expected] * 64
