"""CIFAR-10/100 (torchvision's python-pickle format) and ImageNet (an ImageFolder tree), with the
augmentations of the SAKD recipes (sakd.md §3).

Nothing is downloaded unless ``data.download: true`` is set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets
from torchvision.transforms import v2

from sakd.data.common import DatasetError, DatasetInfo, DataSplits, split_train_val

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 10, datasets.CIFAR10),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761), 100, datasets.CIFAR100),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _to_tensor(mean, std) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def load_cifar_splits(name: str, root: str | None, augment: bool, val_fraction: float,
                      download: bool = False) -> DataSplits:
    mean, std, num_classes, cls = CIFAR_STATS[name]
    folder = Path(root) if root else Path("data") / name
    train_tf = v2.Compose(([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()] if augment else [])
                          + _to_tensor(mean, std))
    test_tf = v2.Compose(_to_tensor(mean, std))
    try:
        train = cls(str(folder), train=True, transform=train_tf, download=download)
        train_plain = cls(str(folder), train=True, transform=test_tf, download=False)
        test = cls(str(folder), train=False, transform=test_tf, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DatasetError(
            f"{name} not found or corrupt in {folder} ({exc}). Put torchvision's extracted "
            f"'{cls.base_folder}' folder there, pass data.root=FOLDER, or set data.download=true "
            "to let torchvision download it."
        ) from exc
    info = DatasetInfo(name, num_classes, 3, (32, 32), mean, std, tuple(train.classes))
    train, val = split_train_val(train, train_plain, np.asarray(train.targets), val_fraction)
    return DataSplits(info, train, test, val)


def load_imagenet_splits(root: str | None, augment: bool, val_fraction: float,
                         image_size: int = 224) -> DataSplits:
    folder = Path(root) if root else Path("data") / "imagenet"
    for split in ("train", "val"):
        if not (folder / split).is_dir():
            raise DatasetError(
                f"ImageNet not found: expected an ImageFolder tree {folder / split}/<class>/<image>. "
                "Download ILSVRC-2012 from image-net.org (registration required), arrange train/ "
                "and val/ by class folder, and pass data.root=FOLDER."
            )
    resize = int(round(image_size * 256 / 224))
    train_tf = v2.Compose(([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()] if augment
                           else [v2.Resize(resize), v2.CenterCrop(image_size)])
                          + _to_tensor(IMAGENET_MEAN, IMAGENET_STD))
    test_tf = v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size)]
                         + _to_tensor(IMAGENET_MEAN, IMAGENET_STD))
    train = datasets.ImageFolder(str(folder / "train"), transform=train_tf)
    train_plain = datasets.ImageFolder(str(folder / "train"), transform=test_tf)
    test = datasets.ImageFolder(str(folder / "val"), transform=test_tf)
    if train.classes != test.classes:
        raise DatasetError(f"ImageNet train/ and val/ in {folder} have different class folders")
    info = DatasetInfo("imagenet", len(train.classes), 3, (image_size, image_size),
                       IMAGENET_MEAN, IMAGENET_STD, tuple(train.classes))
    train, val = split_train_val(train, train_plain, np.asarray(train.targets), val_fraction)
    return DataSplits(info, train, test, val)
