"""scikit-learn's bundled 8x8 handwritten digits: the embedded default data set (no download).

1797 images, 16 grey levels (0..16), 10 classes. A fixed stratified split holds out 20 % as the
test set (seed 0), rounded per class: 1438 training and 359 test images.
"""

from __future__ import annotations

import numpy as np
import torch

from sakd.data.common import (
    DatasetInfo,
    DataSplits,
    TensorImageDataset,
    split_train_val,
    stratified_split,
)

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _shift_one_pixel(image: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms import v2

    return v2.RandomCrop(8, padding=1)(image)


def load_digits_splits(root: str | None, augment: bool, val_fraction: float) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.uint8)).unsqueeze(1)  # [N, 1, 8, 8], 0..16
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = stratified_split(bunch.target, TEST_FRACTION, SPLIT_SEED)
    train_images = images[train_idx]
    pixels = train_images.float() / 16.0
    mean, std = (float(pixels.mean()),), (float(pixels.std()),)
    info = DatasetInfo("digits", 10, 1, (8, 8), mean, std, tuple(str(d) for d in range(10)))
    # no flips (a flipped 2 is not a 2); augmentation = a random shift of at most one pixel
    # (zero padding 1, random 8x8 crop)
    plain = TensorImageDataset(train_images, labels[train_idx], mean, std, None, max_value=16.0)
    train = plain.with_augment(_shift_one_pixel) if augment else plain
    test = TensorImageDataset(images[test_idx], labels[test_idx], mean, std, None, max_value=16.0)
    train, val = split_train_val(train, plain, labels[train_idx].numpy(), val_fraction)
    return DataSplits(info, train, test, val)
