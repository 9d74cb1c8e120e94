"""Training data: recursive listing, random crops, bad files skipped and counted, samples."""

from __future__ import annotations

import torch
from conftest import write_photo

from gan_stylizer.io.inputs import list_images, sample_photos
from gan_stylizer.training.data import PhotoDataset, random_resized_crop


def test_list_images_is_recursive_sorted_and_skips_hidden_and_non_images(tmp_path):
    a = write_photo(tmp_path / "b" / "a.png", (8, 8), 0)
    c = write_photo(tmp_path / "c.JPG", (8, 8), 1)
    write_photo(tmp_path / ".hidden" / "x.png", (8, 8), 2)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path)  # a symlink loop is not followed
    assert list_images(tmp_path) == [a, c]


def test_random_resized_crop_shape_range_and_scale():
    image = torch.rand(1, 3, 300, 200)
    for _ in range(5):
        crop = random_resized_crop(image, 64, (96, 128))
        assert crop.shape == (3, 64, 64)
        assert 0 <= crop.min().item() and crop.max().item() <= 1
    # A photo smaller than the crop is scaled up so that its short side fits.
    assert random_resized_crop(torch.rand(1, 3, 20, 30), 64, (64, 64)).shape == (3, 64, 64)


def test_unreadable_files_are_skipped_and_counted(tmp_path, caplog):
    good = write_photo(tmp_path / "good.png", (80, 60), 0)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    dataset = PhotoDataset([bad, good], image_size=32, long_side=(40, 48))
    item = dataset[0]  # the bad file: the next good one comes back instead
    assert item.shape == (3, 32, 32)
    assert dataset.skipped == {bad}
    assert "bad.jpg" in caplog.text
    assert dataset[0].shape == (3, 32, 32)  # a known-bad file is not read again


def test_sample_photos_ship_with_scikit_image():
    photos = sample_photos()
    assert len(photos) == 5 and all(p.is_file() for p in photos)
