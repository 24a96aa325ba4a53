"""Preprocessing of images into feature vectors: hand-computable cases."""

import numpy as np
import pytest
from PIL import Image

from fiftyone_intrinsic.core.preprocessing import preprocess_image
from fiftyone_intrinsic.core.settings import Preprocessing
from fiftyone_intrinsic.datasets.settings import FeatureSettings


def gray(values):
    return Image.fromarray(np.array(values, dtype=np.uint8))


def test_unit_and_byte_ranges():
    image = gray([[0, 255], [51, 102]])
    unit = preprocess_image(image, Preprocessing())[..., 0]
    byte = preprocess_image(image, Preprocessing(value_range="byte"))[..., 0]
    np.testing.assert_allclose(unit, [[0, 1], [0.2, 0.4]])
    np.testing.assert_allclose(byte, [[0, 255], [51, 102]])


def test_per_image_max_normalization_and_blank_images():
    image = gray([[0, 10], [20, 40]])
    out = preprocess_image(image, Preprocessing(value_range="byte", normalize_max=True))[..., 0]
    np.testing.assert_allclose(out, [[0, 63.75], [127.5, 255]])
    blank = preprocess_image(gray([[0, 0], [0, 0]]), Preprocessing(normalize_max=True))
    assert np.all(blank == 0) and np.all(np.isfinite(blank))


def test_channels_conversion_and_resize():
    rgb = Image.fromarray(np.full((4, 6, 3), [255, 0, 0], dtype=np.uint8))
    as_gray = preprocess_image(rgb, Preprocessing(channels=1))
    assert as_gray.shape == (4, 6, 1)
    # ITU-R 601-2 luma, as PIL converts: L = R * 299/1000
    np.testing.assert_allclose(as_gray, np.round(255 * 0.299) / 255)
    as_rgb = preprocess_image(gray([[10, 20], [30, 40]]), Preprocessing(channels=3))
    assert as_rgb.shape == (2, 2, 3) and np.all(as_rgb[..., 0] == as_rgb[..., 2])
    resized = preprocess_image(gray(np.full((10, 7), 128)), Preprocessing(size=4))
    assert resized.shape == (4, 4, 1)
    np.testing.assert_allclose(resized, 128 / 255)


def test_sixteen_bit_images_keep_their_depth():
    image = Image.fromarray(np.array([[0, 65535], [32768, 1]], dtype=np.uint16))
    out = preprocess_image(image, Preprocessing())[..., 0]
    np.testing.assert_allclose(out, [[0, 1], [32768 / 65535, 1 / 65535]])


def test_settings_reject_bad_values_with_the_field_name():
    with pytest.raises(ValueError, match="channels"):
        Preprocessing(channels=2)
    with pytest.raises(ValueError, match="value_range"):
        Preprocessing(value_range="float")
    with pytest.raises(ValueError, match="embeddings_field"):
        FeatureSettings(embeddings_field="  ")
    assert Preprocessing.paper().model_dump() == {
        "size": 224, "channels": None, "value_range": "byte", "normalize_max": True, "max_before_resize": True,
    }


def test_the_order_is_recorded_only_with_per_image_max_normalization():
    """Without normalize_max there is no order: the record is the earlier versions', so
    their runs and stored features still match; with it, an earlier record (no field)
    matches no new one."""
    assert Preprocessing(size=16).model_dump() == {
        "size": 16, "channels": None, "value_range": "unit", "normalize_max": False
    }
    assert Preprocessing(size=16, max_before_resize=False).model_dump() == Preprocessing(size=16).model_dump()
    recorded_earlier = {"size": 224, "channels": None, "value_range": "byte", "normalize_max": True}
    assert recorded_earlier != Preprocessing.paper().model_dump()
    assert recorded_earlier != Preprocessing.paper().model_copy(update={"max_before_resize": False}).model_dump()


def test_the_maximum_is_taken_before_resizing():
    # shrunk 2x2 -> 1x1 the antialiased bilinear filter averages the four pixels: the
    # normalized image's mean, 0.375 x 255; earlier versions divided the rounded mean 38 by itself
    image = gray([[0, 51], [102, 0]])
    paper = Preprocessing(size=1, value_range="byte", normalize_max=True)
    np.testing.assert_allclose(preprocess_image(image, paper), [[[0.375 * 255]]])
    old = paper.model_copy(update={"max_before_resize": False})
    np.testing.assert_allclose(preprocess_image(image, old), [[[255.0]]])
    # growing keeps the maximum: bilinear output never exceeds the largest input
    grown = preprocess_image(gray([[0, 10], [20, 40]]), paper.model_copy(update={"size": 8}))
    assert grown.shape == (8, 8, 1) and grown.max() == pytest.approx(255) and grown.min() == pytest.approx(0)
    blank = preprocess_image(gray(np.zeros((6, 6))), paper.model_copy(update={"size": 3}))
    assert blank.shape == (3, 3, 1) and np.all(blank == 0)


def test_rgb_channels_are_resized_separately_after_one_maximum():
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, 0] = [200, 100, 0]
    pixels[1, 1] = [0, 50, 100]
    out = preprocess_image(Image.fromarray(pixels), Preprocessing(size=1, normalize_max=True))
    # one maximum (200) for the whole image, then each channel's mean
    np.testing.assert_allclose(out[0, 0], [200 / 800, 150 / 800, 100 / 800], rtol=1e-6)


def test_sixteen_bit_images_are_normalized_at_full_depth_before_resizing():
    image = Image.fromarray(np.array([[0, 1000], [3000, 4000]], dtype=np.uint16))
    out = preprocess_image(image, Preprocessing(size=1, channels=3, value_range="byte", normalize_max=True))
    assert out.shape == (1, 1, 3)
    np.testing.assert_allclose(out[0, 0], 255 * 8000 / 4 / 4000, rtol=1e-6)


def test_sixteen_bit_png_read_as_rgb_keeps_its_levels(tmp_path):
    """A real 16-bit grayscale PNG with 64 levels, read with channels=3: PIL's own RGB
    conversion clips it to 8 bits (every level above 255 turns white: 2 levels left)."""
    levels = (np.arange(64, dtype=np.uint16) * 1040).reshape(8, 8)
    path = tmp_path / "sixteen.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # the file really is 16-bit
        rgb = preprocess_image(image, Preprocessing(channels=3))
    assert rgb.shape == (8, 8, 3)
    for channel in range(3):
        np.testing.assert_allclose(rgb[..., channel], levels / 65535)
    with Image.open(path) as image:
        byte = preprocess_image(image, Preprocessing(channels=3, size=4, value_range="byte"))
    assert byte.shape == (4, 4, 3) and len(np.unique(byte)) > 2 and byte.max() <= 255
