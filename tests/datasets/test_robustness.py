"""Robustness on a FiftyOne dataset: the SDK function and the operator agree, results are
stored and reload, K_F comparisons refuse mismatched preprocessing, bad input changes
nothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo

import fiftyone_intrinsic as fi
from fiftyone_intrinsic.datasets.importers import import_arrays
from fiftyone_intrinsic.core.models import load_model
from fiftyone_intrinsic.datasets.schema import ROBUSTNESS
from fiftyone_intrinsic.core.settings import ModelSource

from conftest import snapshot
from training import breastmnist_arrays, train_small_cnn

URI = "@fiftyone-intrinsic/intrinsic/evaluate_adversarial_robustness"
GRAY = dict(size=28, channels=1, mean=(0.0,), std=(1.0,))
FAST = dict(pgd_steps=4, epsilons=(0, 8, 16), epsilons_l2=(0, 0.5, 2), device="cpu")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A CNN trained on BreastMNIST's train split, saved as TorchScript, and a dataset of
    48 test images plus the sharpest train pair."""
    from conftest import shared_file

    folder = tmp_path_factory.mktemp("robust")
    train_x, train_y, test_x, test_y = breastmnist_arrays(shared_file("medical/breastmnist_28.npz"))
    model = train_small_cnn(train_x, train_y)
    script_path = folder / "cnn.pt"
    torch.jit.script(model).save(str(script_path))
    pickled = folder / "cnn.pkl"
    torch.save(model, pickled)
    images = (torch.cat([test_x[:48], train_x]) * 255).round().byte().squeeze(1).numpy()
    labels = torch.cat([test_y[:48], train_y]).numpy()
    name = f"robust-{os.getpid()}"
    dataset = import_arrays(images, labels, name=name, images_dir=folder / "images", overwrite=True)
    full_kf = fi.compute_label_sharpness(dataset, "ground_truth", run_key="kf", device="cpu", progress=lambda f, s: None)
    sharpest = {full_kf.pairs[0].i, full_kf.pairs[0].j}
    ids = dataset.values("id")
    keep = [ids[i] for i in range(48)] + [ids[i] for i in sorted(sharpest) if i >= 48]
    view = dataset.select(keep)
    yield dict(model=model, script=script_path, pickled=pickled, dataset=dataset, view=view)
    fo.delete_dataset(name)


def test_sdk_function_and_operator_give_the_same_numbers(setting):
    view = setting["view"]
    scripted = load_model(ModelSource(kind="torchscript", path=str(setting["script"])))
    sdk = fi.evaluate_robustness(view, scripted, model_input=GRAY, run_key="sdk", sharpness_run_key="kf",
                                 progress=lambda f, s: None, **FAST)
    stored = foo.get_operator(URI)(
        view, model_path=setting["script"], model_kind="torchscript", input_size=28, input_channels=1,
        mean=(0.0,), std=(1.0,), epsilons=FAST["epsilons"], epsilons_l2=FAST["epsilons_l2"],
        pgd_steps=FAST["pgd_steps"], sharpness_run_key="kf", run_key="op", device="cpu",
    )
    attacks = sdk.attacks
    assert stored.clean_accuracy == attacks.clean_accuracy
    assert stored.delta_loss == pytest.approx(attacks.delta_loss, rel=1e-9)
    for name, curve in attacks.curves.items():
        assert stored.curves[name]["accuracy"] == list(curve.accuracy)
        assert stored.curves[name]["loss"] == pytest.approx(list(curve.loss), rel=1e-9)
    assert stored.r_hat_mean == pytest.approx(attacks.r_hat_mean, rel=1e-9)
    names = ROBUSTNESS.names("op", attacks=("fgsm", "pgd", "pgd_l2"))
    np.testing.assert_array_equal(np.array(view.values(names.field("correct"))), attacks.clean_correct)
    min_eps = np.array(view.values(names.field("min_epsilon")), dtype=float)
    np.testing.assert_allclose(min_eps, attacks.min_epsilon, equal_nan=True)
    # fragile: correct clean, fooled by PGD at the smallest positive budget (8/255 here),
    # recomputed from the stored per-sample fields, not from the tag itself
    first_flip = view.values(names.field("flip_epsilon:pgd"))
    correct = view.values(names.field("correct"))
    smallest = FAST["epsilons"][1]
    expected = {i for i, c, e in zip(view.values("id"), correct, first_flip) if c and e == smallest}
    assert expected, f"PGD at {smallest}/255 fooled no sample; the check below would compare empty sets"
    tagged = set(view.match_tags(names.tag("fragile")).values("id"))
    saved = set(view._dataset.load_saved_view(names.view("fragile")).values("id"))
    assert tagged == expected and saved == expected

    comparison = sdk.sharpness
    kf = fi.load_intrinsic_results(setting["dataset"], "kf")
    assert comparison.k_f == kf.k_f and comparison.inverse_k_f == pytest.approx(kf.min_distance)
    assert comparison.scale == 1.0
    certificate = comparison.certificate
    assert certificate.distance == pytest.approx(kf.min_distance, rel=1e-6)
    pair = kf.pairs[0]
    both = setting["dataset"].select([pair["id_i"], pair["id_j"]], ordered=True)
    pixels = torch.tensor(np.stack([np.asarray(Image.open(p)) for p in both.values("filepath")]))
    with torch.no_grad():
        predicted = setting["model"](pixels.float().div(255).unsqueeze(1)).argmax(1).tolist()
    expected_both = predicted == [int(pair["label_i"]), int(pair["label_j"])]
    assert certificate.both_correct == expected_both
    if expected_both:  # the theorem: the decision changes within half the pair distance
        assert certificate.segment_flip <= certificate.distance / 2 + certificate.distance / 200
    assert certificate.flip_radius == pytest.approx(np.nanmin([certificate.segment_flip, certificate.pgd_flip]))
    assert stored.sharpness["certificate"]["flip_radius"] == pytest.approx(certificate.flip_radius)
    assert comparison.radius_bound == pytest.approx(kf.min_distance / 2)
    assert stored.sharpness["r_hat_over_bound"] == pytest.approx(comparison.r_hat_median / comparison.radius_bound)


def test_results_reload_in_a_fresh_process(setting):
    dataset = setting["dataset"]
    fi.evaluate_robustness(setting["view"], setting["model"], model_input=GRAY, run_key="reload",
                           attacks=("fgsm",), minimal=False, progress=lambda f, s: None, **FAST)
    expected = fi.load_intrinsic_results(dataset, "reload")
    script = (
        "import json, fiftyone as fo, fiftyone_intrinsic as fi\n"
        f"r = fi.load_intrinsic_results(fo.load_dataset({dataset.name!r}), 'reload')\n"
        "print(json.dumps(dict(acc=r.clean_accuracy, curves=r.curves, delta=r.delta_loss)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), check=True)
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded["acc"] == expected.clean_accuracy and reloaded["delta"] == expected.delta_loss
    assert reloaded["curves"]["fgsm"]["accuracy"] == expected.curves["fgsm"]["accuracy"]
    fi.delete_intrinsic_run(dataset, "reload")


def test_bad_input_is_refused_and_changes_nothing(setting, tmp_path):
    dataset, view = setting["dataset"], setting["view"]
    fi.compute_label_sharpness(view, "ground_truth", run_key="kf32", features={"preprocessing": {"size": 32}},
                               device="cpu", progress=lambda f, s: None)
    before = snapshot(dataset)
    op = foo.get_operator(URI)
    common = dict(input_size=28, input_channels=1, mean=(0.0,), std=(1.0,), device="cpu", **{k: v for k, v in FAST.items() if k != "device"})
    cases = [
        (lambda: op(view, model_path=setting["pickled"], model_kind="torchscript", **common), "not a TorchScript file"),
        (lambda: op(view, model_path=setting["pickled"], model_kind="torchvision", **common), "weights_only"),
        (lambda: op(view, model_path=setting["script"], model_kind="torchscript", class_names=["0"], **common), "not in the class map"),
        (lambda: op(view, model_path=setting["script"], model_kind="torchscript", sharpness_run_key="kf32", **common), "comparable only in the same preprocessing"),
    ]
    for call, reason in cases:
        with pytest.raises(foo.executor.ExecutionError, match=reason):
            call()
        assert snapshot(dataset) == before
    wrong_classes = train_small_cnn(torch.rand(8, 1, 28, 28), torch.arange(8) % 3, n_classes=3, epochs=1)
    with pytest.raises(ValueError, match="class map has 2 classes"):
        fi.evaluate_robustness(view, wrong_classes, model_input=GRAY, run_key="bad", **FAST)
    with pytest.raises(ValueError, match="rejected input"):
        fi.evaluate_robustness(view, setting["model"], model_input=dict(size=28, channels=3), run_key="bad", **FAST)
    with pytest.raises(ValueError, match="comparable only in the same preprocessing"):
        fi.evaluate_robustness(view, setting["model"], model_input=GRAY, sharpness_run_key="kf32", run_key="bad", **FAST)
    assert snapshot(dataset) == before
    fi.delete_intrinsic_run(dataset, "kf32")


def test_r_hat_against_the_bound_comes_out_either_way_on_real_models(setting, tmp_path):
    """R̂ against 1/(2·K_F) is a measurement, not a theorem: a CNN on BreastMNIST (whose
    sharpest pair is a near-copy 0.19 apart) keeps far more room than the bound, one on
    MNIST 3 vs 5 (sharpest pair 4.7 apart) is more fragile than the bound forces."""
    from conftest import shared_file
    from fiftyone_intrinsic.datasets.importers import read_idx
    from training import train_small_cnn

    breast = fi.evaluate_robustness(setting["view"], setting["model"], model_input=GRAY, run_key="bound_breast",
                                    sharpness_run_key="kf", progress=lambda f, s: None, **FAST).sharpness
    assert breast.r_hat_over_bound > 1

    images = read_idx(shared_file("natural/mnist_t10k/t10k-images-idx3-ubyte.gz"))
    labels = read_idx(shared_file("natural/mnist_t10k/t10k-labels-idx1-ubyte.gz"))
    keep = np.flatnonzero((labels == 3) | (labels == 5))[:1000]
    mnist = import_arrays(images[keep], labels[keep], name=f"bound-mnist-{os.getpid()}", images_dir=tmp_path / "mnist")
    try:
        fi.compute_label_sharpness(mnist, "ground_truth", run_key="kf", device="cpu", progress=lambda f, s: None)
        x = torch.tensor(images[keep] / 255.0, dtype=torch.float32).unsqueeze(1)
        model = train_small_cnn(x[:800], torch.tensor((labels[keep] == 5).astype(np.int64))[:800], epochs=4)
        natural = fi.evaluate_robustness(mnist.skip(800).limit(40), model, class_names=["3", "5"], model_input=GRAY,
                                         run_key="bound", sharpness_run_key="kf", progress=lambda f, s: None,
                                         **FAST).sharpness
        assert natural.r_hat_over_bound < 1
        cert = natural.certificate
        if cert.both_correct:  # the theorem, and the measured flip within it
            assert cert.flip_radius <= cert.distance / 2 * (1 + 1 / 100)
    finally:
        fo.delete_dataset(mnist.name)
