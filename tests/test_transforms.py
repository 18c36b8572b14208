"""data.transforms and the augmentation kernels: what each does to an image, against NumPy
references; the same draws on every backend; seeded DataLoader augmentation; bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn.backends import augmentation as kernels
from autograd_cnn.data import DataLoader, transforms
from autograd_cnn.errors import ArgumentError, ArgumentTypeError, ShapeError


def _images(n=6, c=2, h=7, w=9, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype("float32")


@pytest.mark.parametrize("mode, numpy_mode", [("reflect", "symmetric"), ("mirror", "reflect"), ("wrap", "wrap"),
                                              ("nearest", "edge"), ("constant", "constant")])
def test_each_fill_mode_reads_outside_the_image_as_numpy_pads(mode, numpy_mode):
    x = _images(2, 3, 5, 6).transpose(0, 2, 3, 1)  # channels-last, as the kernels take them
    pad = 7  # more than the image: the patterns repeat
    rows, cols = kernels.crop_grid(np, np.array([-pad, -pad]), np.array([-pad, -pad]), (5 + 2 * pad, 6 + 2 * pad))
    out = kernels.resample(np, x, rows, cols, "nearest", mode, fill_value=0.0)
    want = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=numpy_mode)
    np.testing.assert_array_equal(out, want)


def test_random_crop_is_a_window_of_the_padded_image():
    x = _images()
    out = transforms.RandomCrop((7, 9), padding=2)(x, rng=np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = []
    for i in range(len(x)):
        found = [(t, left) for t in range(5) for left in range(5)
                 if np.array_equal(out[i], padded[i, :, t:t + 7, left:left + 9])]
        assert found, f"image {i} is no window of its padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 1, "each image draws its own place"


def test_flip_mirrors_some_images_and_leaves_the_rest():
    x = _images(40)
    out = transforms.RandomHorizontalFlip()(x, rng=np.random.default_rng(0))
    mirrored = [np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 5 < sum(mirrored) < 35
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(0.0)(x), x)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_a_quarter_turn_is_numpys_rot90(interpolation):
    x = _images(3, 1, 6, 6)
    out = transforms.RandomRotation((90, 90), interpolation=interpolation)(x)
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(2, 3)), atol=1e-6)


def test_normalize_one_image_and_integer_images():
    x = (_images(1, 3, 4, 4)[0] * 255).astype(np.uint8)
    out = transforms.Normalize((10, 20, 30), (2, 4, 8))(x)
    assert out.shape == x.shape and out.dtype.kind == "f"
    mean, std = np.array([10, 20, 30]).reshape(3, 1, 1), np.array([2, 4, 8]).reshape(3, 1, 1)
    np.testing.assert_allclose(out, (x - mean) / std)
    crop = transforms.RandomCrop(4, padding=1)(x)
    assert crop.dtype == np.uint8 and crop.shape == x.shape


def test_the_same_draws_give_the_same_images_on_every_backend(backend):
    x = _images()
    augment = transforms.Compose([transforms.RandomCrop((7, 9), padding=(1, 2), padding_mode="reflect"),
                                  transforms.RandomHorizontalFlip(),
                                  transforms.RandomRotation(20, interpolation="bilinear"),
                                  transforms.Normalize(0.5, 0.25)])
    want = augment(x, rng=np.random.default_rng(3))
    with ag.use_backend(backend):
        t = ag.tensor(x)
        out = augment(t, rng=np.random.default_rng(3))
    assert isinstance(out, ag.Tensor) and out.backend == backend and out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_seeded_loader_augments_the_same_way_every_run_and_keeps_its_batch_order():
    x, y = _images(10), np.arange(10)
    augment = transforms.Compose([transforms.RandomCrop((7, 9), padding=2), transforms.RandomHorizontalFlip()])
    runs = [[(xb.numpy(), yb.numpy()) for xb, yb in DataLoader(x, y, batch_size=4, seed=5, transform=augment)]
            for _ in range(2)]
    plain = [yb.numpy() for _, yb in DataLoader(x, y, batch_size=4, seed=5)]
    for (xa, ya), (xb, _), yp in zip(*runs, plain):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yp)  # augmenting draws from a stream of its own
    assert not np.array_equal(runs[0][0][0], x[runs[0][0][1]])
    with pytest.raises(ArgumentTypeError, match="transform"):
        DataLoader(x, y, transform="flip")


@pytest.mark.parametrize("make, name, error", [
    (lambda: transforms.RandomHorizontalFlip(1.5), "p", ArgumentError),
    (lambda: transforms.RandomRotation(-3), "degrees", ArgumentError),
    (lambda: transforms.RandomRotation((10, -10)), "degrees", ArgumentError),
    (lambda: transforms.RandomCrop(0), "size", ArgumentError),
    (lambda: transforms.RandomCrop(5, padding_mode="zeros"), "padding_mode", ArgumentError),
    (lambda: transforms.Normalize(0.5, 0), "std", ArgumentError),
    (lambda: transforms.Normalize("a", 1), "mean", ArgumentTypeError),
    (lambda: transforms.Compose(transforms.RandomHorizontalFlip()), "transforms", ArgumentTypeError),
    (lambda: transforms.RandomCrop(12, padding=1)(_images()), "size", ShapeError),
    (lambda: transforms.RandomHorizontalFlip()(np.zeros((3, 3))), "images", ShapeError),
])
def test_bad_arguments_are_refused_naming_them(make, name, error):
    with pytest.raises(error, match=name):
        make()
