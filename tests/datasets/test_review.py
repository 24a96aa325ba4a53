"""The review queue of a K_F run on real BreastMNIST in FiftyOne's database: the pair ranks
the run writes, marking pairs reviewed (from the library or by hand in the App), the next
samples to review, and what deleting or renaming the run does to the marks."""

import pytest

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.review import mark_reviewed, review_next_view, reviewed_pairs, reviewed_tag
from fiftyone_intrinsic.datasets.schema import SHARPNESS

QUIET = dict(device="cpu", progress=lambda f, s: None)


@pytest.fixture
def kf(breast):
    fi.compute_label_sharpness(breast, "ground_truth", run_key="rq", top=6, overwrite=True, **QUIET)
    yield breast
    breast.reload()
    for key in ("rq", "rq_renamed"):
        if key in breast.list_runs():
            fi.delete_intrinsic_run(breast, key)


def _pairs(dataset, key="rq"):
    return [[p["id_i"], p["id_j"]] for p in fi.load_intrinsic_results(dataset, key).pairs]


def test_each_pair_member_carries_the_ranks_of_its_pairs(kf):
    pairs = _pairs(kf)
    field = SHARPNESS.names("rq").field("pair_ranks")
    ranks = dict(zip(*kf.values(["id", field])))
    for rank, pair in enumerate(pairs, start=1):
        assert all(rank in ranks[i] for i in pair)
    members = {i for pair in pairs for i in pair}
    assert all(ranks[i] is None for i in ranks if i not in members)
    assert sum(len(ranks[i]) for i in members) == 2 * len(pairs)  # a hub lists every pair it is in
    view = fi.load_sharpest_pairs_view(kf, "rq")
    first = [i for i in view.values("id") if i in members]
    assert first[:2] == pairs[0]  # the sharpest pair side by side


def test_marking_a_pair_reviewed_tags_both_and_leaves_the_review_queue(kf):
    pairs = _pairs(kf)
    tag = mark_reviewed(kf, "rq", pairs[0])
    assert tag == "rq:reviewed" == reviewed_tag("rq")
    assert set(kf.match_tags(tag).values("id")) == set(pairs[0])
    assert reviewed_pairs(kf, "rq", pairs)[0] is True
    hub_pairs = [all(i in pairs[0] for i in p) for p in pairs]  # a pair of already-marked samples
    assert reviewed_pairs(kf, "rq", pairs) == hub_pairs

    distance = SHARPNESS.names("rq").field("distance")
    queue = review_next_view(kf, "rq", n=10)
    assert len(queue) == 10 and not set(queue.values("id")) & set(pairs[0])
    values = queue.values(distance)
    assert values == sorted(values)
    unreviewed = kf.match_tags(tag, bool=False).exists(distance).values(distance)
    assert values == sorted(unreviewed)[:10]
    assert not any(distance in name for name in kf.list_indexes())  # the queue created no index

    # a person tagging in the App marks just the same
    kf.select(pairs[1]).tag_samples(tag)
    assert reviewed_pairs(kf, "rq", pairs)[1] is True
    with pytest.raises(ValueError, match="at least 1"):
        review_next_view(kf, "rq", n=0)


def test_deleting_the_run_removes_every_review_mark_and_the_pair_ranks(kf):
    pairs = _pairs(kf)
    mark_reviewed(kf, "rq", pairs[0])
    kf.select(pairs[1]).tag_samples("rq:reviewed")  # by hand
    kf.select(pairs[1]).tag_samples("my_own_tag")
    fi.delete_intrinsic_run(kf, "rq")
    assert "rq:reviewed" not in kf.count_sample_tags()
    assert not kf.has_sample_field(SHARPNESS.names("rq").field("pair_ranks"))
    assert kf.count_sample_tags()["my_own_tag"] == len(set(pairs[1]))
    kf.untag_samples("my_own_tag")


def test_renaming_the_run_moves_the_marks(kf):
    pairs = _pairs(kf)
    mark_reviewed(kf, "rq", pairs[0])
    kf.select(pairs[1]).tag_samples("rq:reviewed")
    fi.rename_intrinsic_run(kf, "rq", "rq_renamed")
    assert "rq:reviewed" not in kf.count_sample_tags()
    assert set(kf.match_tags("rq_renamed:reviewed").values("id")) == set(pairs[0]) | set(pairs[1])
    assert kf.has_sample_field("rq_renamed_pair_ranks")


def test_a_run_stored_before_review_marks_claims_its_tag_on_first_use(kf):
    """Runs of earlier versions do not own ``<key>:reviewed``: the first mark claims it,
    unless the tag is somebody else's already; the panel's pairs still show without it."""
    config = fi.get_intrinsic_run_info(kf, "rq").config
    config.tags = [t for t in config.tags if t != "rq:reviewed"]
    config.names = {**config.names, "tags": {r: t for r, t in config.names["tags"].items() if r != "reviewed"}}
    kf.update_run_config("rq", config)
    pairs = _pairs(kf)
    kf.select(pairs[0][:1]).tag_samples("rq:reviewed")  # someone's own tag of that name
    with pytest.raises(ValueError, match="tag 'rq:reviewed'"):
        mark_reviewed(kf, "rq", pairs[1])
    kf.untag_samples("rq:reviewed")
    mark_reviewed(kf, "rq", pairs[1])
    assert "rq:reviewed" in fi.get_intrinsic_run_info(kf, "rq").config.tags
    fi.delete_intrinsic_run(kf, "rq")
    assert "rq:reviewed" not in kf.count_sample_tags()


def test_overwriting_the_run_removes_the_marks_of_the_old_one(kf):
    """The marks belong to the run they were made for: a replacement starts unreviewed."""
    mark_reviewed(kf, "rq", _pairs(kf)[0])
    fi.compute_label_sharpness(kf, "ground_truth", run_key="rq", top=3, overwrite=True, **QUIET)
    assert "rq:reviewed" not in kf.count_sample_tags()
    assert "rq:reviewed" in fi.get_intrinsic_run_info(kf, "rq").config.tags  # the new run owns it again
    mark_reviewed(kf, "rq", _pairs(kf)[0])
    assert kf.count_sample_tags()["rq:reviewed"] == 2
