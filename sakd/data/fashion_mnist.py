"""Fashion-MNIST from its original IDX files (60 000 training and 10 000 test images, 28x28).

Default root: /usr/share/datasets/fashion-mnist, where Debian's package
``dataset-fashion-mnist`` installs them (``apt-get install -y dataset-fashion-mnist``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms import v2

from sakd.data.common import (
    DatasetError,
    DatasetInfo,
    DataSplits,
    TensorImageDataset,
    split_train_val,
)
from sakd.data.idx import find_idx, read_idx

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
# per-pixel statistics of the 60k training images (0..1 scale)
MEAN, STD = (0.2860,), (0.3530,)


FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
HOW_TO_GET = ("Install it with `apt-get install -y dataset-fashion-mnist` (Debian) or put the four "
              "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in a folder and pass "
              "data.root=FOLDER.")


def load_fashion_mnist_splits(root: str | None, augment: bool, val_fraction: float) -> DataSplits:
    folder = Path(root) if root else DEFAULT_ROOT
    if not folder.is_dir():
        raise DatasetError(f"Fashion-MNIST not found: looked in {folder}. {HOW_TO_GET}")
    missing = [stem for stem in FILES
               if not ((folder / stem).is_file() or (folder / f"{stem}.gz").is_file())]
    if missing:
        raise DatasetError(f"Fashion-MNIST incomplete in {folder}: missing "
                           f"{', '.join(f'{m}[.gz]' for m in missing)}. {HOW_TO_GET}")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DatasetError(
                f"Fashion-MNIST {split} files in {folder} have shapes {images.shape} and "
                f"{labels.shape}; expected [N, 28, 28] images and [N] labels"
            )
        if labels.max() >= len(CLASSES):
            raise DatasetError(f"Fashion-MNIST {split} labels in {folder} exceed 9")
        arrays[split] = (torch.from_numpy(images.copy()).unsqueeze(1),
                         torch.from_numpy(labels.astype("int64")))
    info = DatasetInfo("fashion-mnist", 10, 1, (28, 28), MEAN, STD, CLASSES)
    train_aug = v2.Compose([v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip()]) if augment else None
    train_plain = TensorImageDataset(*arrays["train"], MEAN, STD)
    train = train_plain.with_augment(train_aug)
    test = TensorImageDataset(*arrays["test"], MEAN, STD)
    train, val = split_train_val(train, train_plain, arrays["train"][1].numpy(), val_fraction)
    return DataSplits(info, train, test, val)
