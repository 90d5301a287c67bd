"""Data sets: digits splits, the IDX reader and Fashion-MNIST on small files written here,
CIFAR-10 and ImageNet loaders on tiny fakes in their real on-disk formats."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest
import torch

from sakd.data import DatasetError, load_splits
from sakd.data.common import stratified_split
from sakd.data.idx import read_idx


def _labels(dataset) -> list[int]:
    return [int(dataset[i][1]) for i in range(len(dataset))]


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_split_sizes_and_description(digits_splits):
    s = digits_splits
    # 20 % of each class held out for the test split, rounded per class: 359 of 1797
    assert len(s.test) == 359
    assert len(s.train) + len(s.val) == 1438
    assert len(s.val) == 143 and len(s.train) == 1295  # 10 % of each class of the rest
    info = s.info
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == ("digits", 10, 1, (8, 8))
    x, y = s.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= y < 10


def test_digits_splits_are_stratified_and_disjoint(digits_splits):
    from sklearn.datasets import load_digits

    full = Counter(load_digits().target.tolist())
    test = Counter(_labels(digits_splits.test))
    val = Counter(_labels(digits_splits.val))
    for label in range(10):
        assert test[label] == round(0.2 * full[label])  # 20 % of every class in the test split
        assert abs(val[label] - 0.1 * (full[label] - test[label])) <= 0.5
    # the 1797 images are all distinct: no image is in two splits
    def rows(dataset):
        return {tuple(dataset[i][0].flatten().tolist()) for i in range(len(dataset))}

    train, val, test = rows(digits_splits.train), rows(digits_splits.val), rows(digits_splits.test)
    assert len(train) + len(val) + len(test) == 1797
    assert not (train & test) and not (train & val) and not (val & test)


def test_digits_are_normalised_with_training_statistics(digits_splits):
    pixels = torch.stack([digits_splits.train.dataset[i][0] for i in range(1438)])
    assert pixels.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert pixels.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_are_deterministic():
    a, b = load_splits("digits", val_fraction=0.1), load_splits("digits", val_fraction=0.1)
    assert a.train.indices == b.train.indices and a.val.indices == b.val.indices
    assert torch.equal(a.test[7][0], b.test[7][0])
    no_val = load_splits("digits", val_fraction=0.0)
    assert no_val.val is None and len(no_val.train) == 1438


def test_stratified_split_by_hand():
    labels = np.array([0] * 10 + [1] * 20 + [2] * 5)
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(Counter(labels[held].tolist()).items()) == [(0, 2), (1, 4), (2, 1)]
    assert len(set(keep) & set(held)) == 0 and len(keep) + len(held) == 35
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[1], held)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=4)[1], held)


def test_unknown_dataset_names_it_and_lists_the_choices():
    with pytest.raises(DatasetError, match=r"unknown data set 'digitz'; choose one of .*'digits'"):
        load_splits("digitz")


# ---------------------------------------------------------------------------------------------
# IDX and Fashion-MNIST


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_reader_round_trip(tmp_path, writers, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = writers.idx(tmp_path / f"x-idx3-ubyte{suffix}", array)
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip
    out = read_idx(path)
    assert out.dtype == np.uint8 and np.array_equal(out, array)


def test_idx_reader_big_endian_int32(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    header = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big")
    (tmp_path / "i").write_bytes(header + values.tobytes())
    assert read_idx(tmp_path / "i").tolist() == [1, -2, 70000]


def test_corrupt_idx_files_are_named(tmp_path, writers):
    array = np.zeros((4, 28, 28), dtype=np.uint8)
    good = writers.idx(tmp_path / "a", array).read_bytes()
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(DatasetError, match=r"short holds 3126 bytes .* truncated or corrupt"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x03\x04" + good[4:])
    with pytest.raises(DatasetError, match=r"magic is not an IDX file \(bad magic number 01020304\)"):
        read_idx(tmp_path / "magic")
    (tmp_path / "head").write_bytes(good[:9])
    with pytest.raises(DatasetError, match="truncated inside its header"):
        read_idx(tmp_path / "head")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"cannot read IDX file .*bad.gz"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(DatasetError, match=r"cut.gz"):
        read_idx(tmp_path / "cut.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reader(tmp_path, writers, gz):
    arrays = writers.fashion_mnist(tmp_path, n_train=40, n_test=20, gz=gz)
    splits = load_splits("fashion-mnist", str(tmp_path), augment=False, val_fraction=0.25)
    info = splits.info
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, (28, 28))
    assert info.class_names[9] == "Ankle boot"
    assert len(splits.train) == 30 and len(splits.val) == 10 and len(splits.test) == 20
    assert Counter(_labels(splits.val)) == Counter(dict.fromkeys(range(10), 1))
    images, labels = arrays["t10k"]
    x, y = splits.test[3]
    expected = (torch.from_numpy(images[3]).float() / 255.0 - 0.2860) / 0.3530
    assert y == labels[3] and torch.allclose(x[0], expected)


def test_fashion_mnist_augmentation_only_on_training(tmp_path, writers):
    writers.fashion_mnist(tmp_path, gz=True)
    splits = load_splits("fashion-mnist", str(tmp_path), augment=True, val_fraction=0.25)
    plain = load_splits("fashion-mnist", str(tmp_path), augment=False, val_fraction=0.25)
    torch.manual_seed(0)
    differs = any(not torch.equal(splits.train[i][0], plain.train[i][0]) for i in range(10))
    assert differs
    assert torch.equal(splits.val[0][0], plain.val[0][0]) and torch.equal(splits.test[0][0], plain.test[0][0])


def test_missing_fashion_mnist_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)missing train-images-idx3-ubyte.*apt-get install "
                                           r"-y dataset-fashion-mnist.*data.root="):
        load_splits("fashion-mnist", str(tmp_path))
    with pytest.raises(DatasetError, match=r"looked in .*nowhere.*apt-get install"):
        load_splits("fashion-mnist", str(tmp_path / "nowhere"))


def test_fashion_mnist_bad_files(tmp_path, writers):
    writers.fashion_mnist(tmp_path, n_train=10, n_test=10, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte holds 7 bytes"):
        load_splits("fashion-mnist", str(tmp_path))
    writers.fashion_mnist(tmp_path, n_train=10, n_test=10, gz=False)
    writers.idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(9, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"test files .* expected \[N, 28, 28\] images and \[N\] labels"):
        load_splits("fashion-mnist", str(tmp_path))


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (torchvision's python pickles) and ImageNet (an ImageFolder tree)


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the md5 of the real CIFAR files; a fake in the same format passes
    when the files exist."""
    import os

    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def test_cifar10_loader_on_a_fake_in_the_real_format(tmp_path, writers, no_md5):
    batches = writers.cifar10(tmp_path, per_batch=10, n_test=20)
    splits = load_splits("cifar10", str(tmp_path), augment=False, val_fraction=0.2)
    info = splits.info
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 3, (32, 32))
    assert info.class_names[0] == "airplane" and info.class_names[9] == "truck"
    assert len(splits.train) + len(splits.val) == 50 and len(splits.test) == 20
    assert len(splits.val) == 10
    # the second test image, decoded by hand from the pickle's channel-major row
    row = batches["test_batch"]["data"][1].reshape(3, 32, 32).astype(np.float32) / 255.0
    mean, std = np.array(info.mean).reshape(3, 1, 1), np.array(info.std).reshape(3, 1, 1)
    x, y = splits.test[1]
    assert x.shape == (3, 32, 32) and y == batches["test_batch"]["labels"][1]
    assert np.allclose(x.numpy(), (row - mean) / std, atol=1e-5)
    augmented = load_splits("cifar10", str(tmp_path), augment=True, val_fraction=0.0)
    assert augmented.train[0][0].shape == (3, 32, 32)


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar10 not found or corrupt in .*cifar-10-batches-py"
                                           r".*data.download=true"):
        load_splits("cifar10", str(tmp_path))


def test_imagenet_loader_on_a_tiny_image_folder(tmp_path, writers):
    writers.imagenet(tmp_path, per_class=4)
    splits = load_splits("imagenet", str(tmp_path), augment=True, val_fraction=0.25)
    info = splits.info
    assert info.num_classes == 3 and info.class_names == ("n01440764", "n01443537", "n01484850")
    assert info.image_size == (224, 224)
    assert len(splits.train) == 9 and len(splits.val) == 3 and len(splits.test) == 6
    x, y = splits.test[5]
    assert x.shape == (3, 224, 224) and y == 2
    assert _labels(splits.val) == [0, 1, 2]
    from sakd.data.torchvision_sets import load_imagenet_splits

    small = load_imagenet_splits(str(tmp_path), augment=False, val_fraction=0.0, image_size=16)
    assert small.train[0][0].shape == (3, 16, 16)


def test_imagenet_errors(tmp_path, writers):
    with pytest.raises(DatasetError, match=r"ImageNet not found: expected an ImageFolder tree .*train"):
        load_splits("imagenet", str(tmp_path))
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_splits("imagenet", str(tmp_path), download=True)
    writers.imagenet(tmp_path, classes=("a", "b"), per_class=1)
    (tmp_path / "val" / "b").rename(tmp_path / "val" / "c")
    with pytest.raises(DatasetError, match="different class folders"):
        load_splits("imagenet", str(tmp_path))
