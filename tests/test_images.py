"""Image loading: every mode a real archive holds becomes 8-bit L or RGB; bad files are named."""

import numpy as np
import pytest
from conftest import NIH_SAMPLE
from PIL import Image

from probelab.images import ImageDataset, ImageLoadError, chunk_batches, load_image


def test_gray_8bit_is_kept_as_is(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.mode == "L"
    assert np.array_equal(np.asarray(image), pixels)


def test_opaque_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == [10, 20, 30]


def test_transparent_pixels_become_black(tmp_path):
    rgba = np.full((2, 2, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # fully transparent
    rgba[0, 1, 3] = 128  # half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    out = np.asarray(load_image(tmp_path / "t.png"))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert 95 <= out[0, 1, 0] <= 105
    assert out[1, 1].tolist() == [200, 200, 200]


def test_gray_with_alpha_stays_gray(tmp_path):
    Image.new("LA", (3, 3), (90, 255)).save(tmp_path / "la.png")
    image = load_image(tmp_path / "la.png")
    assert image.mode == "L" and np.asarray(image).max() == 90


def test_16bit_is_scaled_by_its_real_range_not_clipped(tmp_path):
    values = np.linspace(1000, 3000, 16, dtype=np.uint16).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").mode.startswith("I")
    out = np.asarray(load_image(tmp_path / "w.png"))
    assert out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) == 16  # order and spacing survive


def test_constant_16bit_image_is_black_not_nan(tmp_path):
    Image.fromarray(np.full((4, 4), 777, dtype=np.uint16)).save(tmp_path / "c.png")
    assert np.asarray(load_image(tmp_path / "c.png")).max() == 0


def test_palette_image_becomes_rgb_with_its_colours(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png")
    out = np.asarray(load_image(tmp_path / "p.png"))
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 0, 255]


def test_palette_with_transparency_composites_onto_black(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 255, 255, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "pt.png", transparency=0)
    out = np.asarray(load_image(tmp_path / "pt.png"))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [0, 255, 0]


def test_jpeg_loads(tmp_path):
    Image.new("RGB", (16, 16), (120, 60, 30)).save(tmp_path / "j.jpg", quality=95)
    image = load_image(tmp_path / "j.jpg")
    assert image.mode == "RGB" and abs(int(np.asarray(image)[8, 8, 0]) - 120) < 4


def test_truncated_png_is_named(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        tmp_path / "x.png"
    )
    data = (tmp_path / "x.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.png could not be decoded"):
        load_image(tmp_path / "cut.png")


def test_non_image_is_named(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.png could not be decoded"):
        load_image(tmp_path / "notes.png")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageLoadError, match=r"gone\.png"):
        load_image(tmp_path / "gone.png")


def test_dataset_returns_zeros_and_the_error_for_a_bad_file(tmp_path):
    import torch

    Image.new("L", (8, 8), 5).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    dataset = ImageDataset(
        [str(tmp_path / "ok.png"), str(tmp_path / "bad.png")],
        lambda im: torch.ones(1, 2, 2),
        (1, 2, 2),
    )
    row, pixels, error = dataset[0]
    assert (row, error) == (0, "") and pixels.sum() == 4
    row, pixels, error = dataset[1]
    assert row == 1 and pixels.sum() == 0 and "bad.png" in error


def test_batches_never_straddle_chunks_and_resume_identically():
    full = list(chunk_batches(0, 23, chunk_size=10, batch_size=4))
    assert full[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [r for batch in full for r in batch] == list(range(23))
    resumed = list(chunk_batches(10, 23, chunk_size=10, batch_size=4))
    assert resumed == full[3:]
    with pytest.raises(ValueError, match="chunk boundary"):
        list(chunk_batches(5, 23, chunk_size=10, batch_size=4))


@pytest.mark.shared_data
@pytest.mark.skipif(not NIH_SAMPLE.is_dir(), reason="../shared/data/nih_cxr14_sample is absent")
def test_every_mode_of_the_real_nih_sample_loads():
    files = sorted(NIH_SAMPLE.glob("images_*/images/*.png"))
    by_mode = {}
    for path in files:
        with Image.open(path) as image:
            by_mode.setdefault(image.mode, path)
    assert "RGBA" in by_mode  # the sample keeps NIH's RGBA files
    for mode, path in by_mode.items():
        image = load_image(path)
        assert image.mode in ("L", "RGB") and image.size == (1024, 1024), (mode, path)
