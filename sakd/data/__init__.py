"""Data sets by name: ``load_splits(config.data)`` -> train / val / test and their description."""

from __future__ import annotations

from collections.abc import Callable

from sakd.data.common import DatasetError, DatasetInfo, DataSplits

__all__ = ["DATASETS", "DataSplits", "DatasetError", "DatasetInfo", "load_splits"]


def _digits(root, augment, val_fraction, download):
    from sakd.data.digits import load_digits_splits

    return load_digits_splits(root, augment, val_fraction)


def _fashion(root, augment, val_fraction, download):
    from sakd.data.fashion_mnist import load_fashion_mnist_splits

    return load_fashion_mnist_splits(root, augment, val_fraction)


def _cifar(name: str) -> Callable:
    def load(root, augment, val_fraction, download):
        from sakd.data.torchvision_sets import load_cifar_splits

        return load_cifar_splits(name, root, augment, val_fraction, download)

    return load


def _imagenet(root, augment, val_fraction, download):
    from sakd.data.torchvision_sets import load_imagenet_splits

    if download:
        raise DatasetError("ImageNet cannot be downloaded automatically (registration required)")
    return load_imagenet_splits(root, augment, val_fraction)


DATASETS: dict[str, Callable[..., DataSplits]] = {
    "digits": _digits,
    "fashion-mnist": _fashion,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "imagenet": _imagenet,
}


def load_splits(name: str, root: str | None = None, augment: bool = True,
                val_fraction: float = 0.0, download: bool = False) -> DataSplits:
    """Load a data set by name; an unknown name or a missing data set raises DatasetError."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set '{name}'; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root, augment, val_fraction, download)
