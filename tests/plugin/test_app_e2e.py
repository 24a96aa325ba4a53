"""End to end in a real browser: the FiftyOne App served on 127.0.0.1 with real data, the
Intrinsic properties panel opened from the "+" menu, an operator run from the panel's
button, the values rendered, a sharp pair clicked and shown in the grid, the review queue's
images clicked and a pair marked reviewed. Screenshots go to ``test-artifacts/``.

``.ci/setup.sh`` installs what this needs: Debian's ``chromium`` (apt-get) and the
``playwright`` package (the ``test`` extra); no browser is downloaded. Without them the
tests skip and say so.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

import fiftyone as fo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays, import_medmnist, read_idx

from conftest import REPO, shared_file

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic",
]
QUIET = dict(device="cpu", progress=lambda f, s: None)




def _ensure_browser_tools():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing; .ci/setup.sh installs Debian's chromium (as root)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is missing; .ci/setup.sh installs it with the test extra")


ARTIFACTS.mkdir(exist_ok=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The App server on 127.0.0.1 with a medical and a natural dataset."""
    _ensure_browser_tools()
    folder = tmp_path_factory.mktemp("app")
    medical = import_medmnist(shared_file("medical/breastmnist_28.npz"), name=f"e2e-breastmnist-{os.getpid()}",
                              images_dir=folder / "breast", overwrite=True)
    natural = _audited_natural(folder)
    server, url = _start_server(folder)
    yield dict(url=url, medical=medical, natural=natural, folder=folder)
    server.terminate()
    server.wait(timeout=30)
    for dataset in (medical, natural):
        fo.delete_dataset(dataset.name)


def _start_server(folder):
    """An App server on a free port of 127.0.0.1, its log in ``folder``; (process, url)."""
    port = _free_port()
    log = open(folder / f"server-{port}.log", "w")
    # the library of this checkout, as the tests import it: an installed copy may be another
    # checkout's (a worktree) and lack what this checkout's plugin imports
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--address", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            time.sleep(1)
    server.kill()
    pytest.fail(f"the App server did not start: {(folder / f'server-{port}.log').read_text()[-2000:]}")


@contextlib.contextmanager
def _page_on_own_server(app, height):
    """A browser page (1600 px wide, ``height`` tall) beside an App server of its own:
    the shared one restores the panels earlier tests opened. Yields ``(page, url)``."""
    from playwright.sync_api import sync_playwright

    server, url = _start_server(app["folder"])
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                yield browser.new_page(viewport={"width": 1600, "height": height}), url
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _audited_natural(folder):
    """1,000 MNIST test images (3 vs 5) with d_data, K_F and a robustness run."""
    images = read_idx(shared_file("natural/mnist_t10k/t10k-images-idx3-ubyte.gz"))
    labels = read_idx(shared_file("natural/mnist_t10k/t10k-labels-idx1-ubyte.gz"))
    keep = np.flatnonzero((labels == 3) | (labels == 5))[:1000]
    dataset = import_arrays(images[keep], labels[keep], name=f"e2e-mnist-3-vs-5-{os.getpid()}",
                            images_dir=folder / "mnist", overwrite=True)
    fi.compute_intrinsic_dimension(dataset, **QUIET)
    fi.compute_label_sharpness(dataset, "ground_truth", **QUIET)
    from training import train_small_cnn

    x = torch.tensor(images[keep] / 255.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor((labels[keep] == 5).astype(np.int64))
    model = train_small_cnn(x[:800], y[:800], epochs=4)
    fi.evaluate_robustness(dataset.skip(800), model, class_names=["3", "5"],
                           model_input=dict(size=28, channels=1, mean=(0.0,), std=(1.0,)),
                           epsilons=(0, 1, 2, 4, 8), epsilons_l2=(0, 0.5, 1, 2), pgd_steps=5,
                           sharpness_run_key="label_sharpness", **QUIET)
    return dataset


def _open_panel(page, url, dataset):
    page.goto(f"{url}/datasets/{dataset.name}", wait_until="load")
    page.get_by_text(f"{len(dataset):,} samples").first.wait_for(timeout=120_000)
    dismiss = page.get_by_text("Dismiss")
    if dismiss.count():
        dismiss.click()
    new_panel = page.locator("[title='New panel']").first
    try:
        new_panel.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=ARTIFACTS / f"app_loaded_{dataset.name}.png")
    new_panel.click()
    page.get_by_text("Intrinsic properties").first.click()
    page.get_by_text("Intrinsic properties of").first.wait_for(timeout=60_000)


def test_panel_runs_an_operator_and_shows_a_sharp_pair(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        _open_panel(page, app["url"], app["medical"])
        page.get_by_text("No audit runs yet").wait_for(timeout=30_000)
        # from the panel alone: what K_F means and what to do first
        page.get_by_text("What to do first:").first.wait_for(state="attached", timeout=60_000)
        page.get_by_text("K_F (label sharpness) is 1 / the smallest distance").first.wait_for(state="attached", timeout=60_000)
        page.screenshot(path=ARTIFACTS / "panel_empty_breastmnist.png")

        page.get_by_role("button", name="Compute K_F").click()
        page.get_by_text("Label sharpness K_F: compute").first.wait_for(timeout=30_000)
        page.screenshot(path=ARTIFACTS / "form_label_sharpness.png")
        execute = page.get_by_role("button", name="Execute")
        execute.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # the dynamic form resolves its defaults
        execute.click()

        page.get_by_text("Label sharpness K_F =").wait_for(timeout=180_000)
        done = page.get_by_role("button", name="Done")
        if done.count():
            done.click()  # close the operator's progress dialog
        app["medical"].reload()  # the run was written by the App's server process
        expected = fi.load_intrinsic_results(app["medical"], "label_sharpness").k_f
        page.get_by_text(f"K_F = {expected:.4g}").first.wait_for(state="attached", timeout=60_000)
        page.get_by_text("review the sharpest pairs above").first.wait_for(state="attached", timeout=60_000)
        page.screenshot(path=ARTIFACTS / "panel_breastmnist_after_kf.png", full_page=True)

        page.get_by_text(re.compile(r"^1\. .* apart: ")).first.wait_for(state="attached", timeout=30_000)
        page.get_by_role("button", name="Show both in the grid").first.click()
        page.get_by_text("2 samples", exact=True).wait_for(timeout=60_000)
        page.screenshot(path=ARTIFACTS / "grid_sharpest_pair_breastmnist.png")
        browser.close()


def test_panel_on_a_natural_dataset_with_every_section(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 2400})
        _open_panel(page, app["url"], app["natural"])
        page.get_by_text("Adversarial robustness (run").wait_for(timeout=60_000)
        # the panel may render again while loading (its plots then vanish for a moment):
        # wait until four plots stand at once rather than counting at one instant
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 4
        page.get_by_text("Robust accuracy vs L∞ budget").first.wait_for(state="attached", timeout=60_000)
        page.get_by_text("degrees of freedom").first.wait_for(state="attached", timeout=60_000)
        page.get_by_text("Duplicates (run").first.wait_for(state="attached", timeout=60_000)
        assert page.locator(".modebar-container .modebar").count() == 0  # toolbar hidden
        page.screenshot(path=ARTIFACTS / "panel_mnist_3_vs_5.png", full_page=True)
        browser.close()


def test_duplicate_groups_across_splits_open_in_the_grid(app):
    """BreastMNIST's train, val and test tags: after a d_data run over all 780 images the
    panel counts the exact-duplicate groups and those that cross splits (leakage), and the
    button opens exactly the crossing groups' samples in the grid."""
    from fiftyone_intrinsic.datasets.summary import duplicate_groups, summarize_run

    dataset = app["medical"]
    fi.compute_intrinsic_dimension(dataset, run_key="dimension_all", **QUIET)
    found = duplicate_groups(dataset, summarize_run(dataset, "dimension_all"))
    assert found.crossing, "BreastMNIST has duplicate images across its splits"
    try:
        with _page_on_own_server(app, 1600) as (page, url):
            _open_panel(page, url, dataset)
            n = len(found.crossing)
            button = page.get_by_role("button", name=f"Show the {n} group{'s' if n > 1 else ''} across splits")
            button.wait_for(timeout=60_000)
            page.get_by_text(re.compile(rf"{n} group.* splits .*leakage")).first.wait_for(state="attached", timeout=30_000)
            page.screenshot(path=ARTIFACTS / "panel_duplicates_across_splits.png", full_page=True, timeout=120_000)
            button.click()
            page.get_by_text(f"{len(found.crossing_ids)} samples", exact=True).wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the grid draws the images
            page.screenshot(path=ARTIFACTS / "grid_duplicates_across_splits.png", timeout=120_000)
    finally:
        fi.delete_intrinsic_run(dataset, "dimension_all")


def test_a_second_run_opens_a_form_that_is_not_in_error(app):
    """The natural dataset already holds a K_F run under the default key: Compute K_F opens
    its form on the next free key, with no error shown, and Execute enabled."""
    from playwright.sync_api import expect

    dataset = app["natural"]
    assert "label_sharpness" in dataset.list_runs()
    with _page_on_own_server(app, 1200) as (page, url):
        _open_panel(page, url, dataset)
        # the panel renders again once its runs and thumbnails are loaded: click after that
        page.get_by_text("Review queue:").first.wait_for(state="attached", timeout=60_000)
        page.get_by_role("button", name="Compute K_F").click(timeout=60_000)
        page.get_by_text("Label sharpness K_F: compute").first.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('input')].some(e => e.value === 'label_sharpness_2')",
            timeout=60_000,
        )
        page.wait_for_timeout(1500)  # the dynamic form resolves its inputs again
        expect(page.get_by_text("already exists")).to_have_count(0)
        expect(page.get_by_text(re.compile(r"Replace an existing run with this key"))).to_have_count(1)
        expect(page.get_by_role("button", name="Execute")).to_be_enabled()
        page.screenshot(path=ARTIFACTS / "form_second_run_not_in_error.png", timeout=120_000)


def test_choosing_between_two_k_f_runs_of_different_views(app):
    """Two K_F runs (all 1,000 images, and the 200 held out by Skip(800)): the newest is
    shown and the paper comparison refuses to mix it with the d_data of all 1,000; choosing
    the other run in the panel's selector shows it and lifts the refusal."""
    from playwright.sync_api import expect

    dataset = app["natural"]
    fi.compute_label_sharpness(dataset.skip(800), "ground_truth", run_key="kf_holdout", **QUIET)
    try:
        with _page_on_own_server(app, 2400) as (page, url):
            _open_panel(page, url, dataset)
            try:
                page.get_by_text("Run kf_holdout: 200 samples").first.wait_for(timeout=60_000)
            except Exception:
                page.screenshot(path=ARTIFACTS / "panel_two_kf_runs_failed.png", full_page=True, timeout=120_000)
                raise
            refusal = page.get_by_text(re.compile(r"Not combined: d_data run 'intrinsic_dimension' covers 1,000"))
            refusal.first.wait_for(timeout=30_000)
            page.screenshot(path=ARTIFACTS / "panel_two_kf_runs_refusal.png", full_page=True, timeout=120_000)

            # the K_F run selector names the run the panel shows
            selector = page.locator("xpath=//p[text()='K_F run shown']/ancestor::div"
                                    "[.//*[@role='combobox']][1]//*[@role='combobox']")
            expect(selector).to_have_count(1, timeout=30_000)
            expect(selector).to_contain_text("kf_holdout: 200 samples", timeout=60_000)
            selector.click()
            page.get_by_role("option", name=re.compile(r"^label_sharpness: 1,000 samples")).click()
            try:
                page.get_by_text("Run label_sharpness: 1,000 samples").first.wait_for(timeout=60_000)
            except Exception:
                page.screenshot(path=ARTIFACTS / "panel_two_kf_runs_choice_failed.png", full_page=True, timeout=120_000)
                raise
            expect(refusal).to_have_count(0, timeout=60_000)  # both runs now cover the same 1,000
            stored = fi.load_intrinsic_results(dataset, "label_sharpness")
            page.get_by_text(f"Label sharpness K_F = {stored.k_f:.4g}").first.wait_for(timeout=60_000)
            page.screenshot(path=ARTIFACTS / "panel_two_kf_runs_chosen.png", full_page=True, timeout=120_000)
    finally:
        fi.delete_intrinsic_run(dataset, "kf_holdout")


def test_review_queue_shows_pairs_as_images_and_marks_one_reviewed(app):
    """The sharpest pairs side by side as images; a click on one shows its pair in the grid
    and opens it; "Mark reviewed" tags both samples in the database; "Review next 25" shows
    the unreviewed samples closest to another label."""
    dataset = app["natural"]
    pair = fi.load_intrinsic_results(dataset, "label_sharpness").pairs[0]
    tag = "label_sharpness:reviewed"
    try:
        with _page_on_own_server(app, 1400) as (page, url):
            _open_panel(page, url, dataset)
            heading = page.get_by_text("Review queue: 0 of 10 sharp pairs reviewed").first
            heading.wait_for(timeout=60_000)
            images = page.locator("img[src^='data:image/png;base64,']")
            page.wait_for_function(
                "() => [...document.querySelectorAll(\"img[src^='data:image/png;base64,']\")]"
                ".filter(i => i.complete && i.naturalWidth > 0).length >= 10", timeout=60_000)
            assert images.count() == 10  # the first 5 pairs, two images each
            page.get_by_role("button", name="Show 5 more pairs").wait_for(timeout=30_000)
            images.first.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "panel_review_queue.png")

            images.nth(1).click()  # the second image of the sharpest pair
            page.get_by_text("2 samples", exact=True).wait_for(timeout=60_000)
            page.get_by_text(pair["filepath_j"]).first.wait_for(timeout=60_000)  # its modal
            page.screenshot(path=ARTIFACTS / "review_pair_opened.png")
            page.keyboard.press("Escape")

            page.get_by_role("button", name="Mark reviewed").first.click()
            page.get_by_text("Review queue: 1 of 10 sharp pairs reviewed").first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Reviewed ✓ (undo)").first.wait_for(timeout=30_000)
            dataset.reload()
            assert set(dataset.match_tags(tag).values("id")) == {pair["id_i"], pair["id_j"]}
            page.get_by_text("Review queue: 1 of 10").first.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "panel_review_queue_marked.png")

            page.get_by_role("button", name="Review next 25").click()
            page.get_by_text("25 samples", exact=True).wait_for(timeout=60_000)
            page.locator("[data-cy='looker']").nth(24).wait_for(timeout=120_000)  # the grid's 25 tiles
            page.wait_for_timeout(3000)  # drawn
            page.screenshot(path=ARTIFACTS / "review_next_25.png")
    finally:
        dataset.untag_samples(tag)
