"""Shared pieces of the data sets: their description, an in-memory image data set, splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from sakd.errors import SakdError


class DatasetError(SakdError):
    """A data set that is unknown, missing or malformed; the message says what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the export need to know about a data set."""

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]  # (H, W) of the tensors the model receives
    mean: tuple[float, ...]  # per-channel normalisation applied to [0, 1] pixels
    std: tuple[float, ...]
    class_names: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": list(self.class_names),
        }


def normalized_range(mean, std) -> tuple[float, float]:
    """Smallest and largest normalized value of [0, 1] pixels, (0 - mean)/std and (1 - mean)/std
    over the channels: what the graded input's quantization must cover."""
    pairs = list(zip(mean, std, strict=True))
    return (min((0.0 - m) / s for m, s in pairs), max((1.0 - m) / s for m, s in pairs))


def input_value_range(info: DatasetInfo) -> tuple[float, float]:
    """``normalized_range`` of a data set's normalization."""
    return normalized_range(info.mean, info.std)


@dataclass
class DataSplits:
    """The splits of one data set; ``val`` is None when no hold-out was requested."""

    info: DatasetInfo
    train: Dataset
    test: Dataset
    val: Dataset | None = None


class TensorImageDataset(Dataset):
    """Images held in memory as uint8 ``[N, C, H, W]`` with labels ``[N]``.

    ``__getitem__`` returns a float32 image scaled to [0, 1], optionally augmented, then
    normalised with ``(x - mean) / std`` per channel.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        max_value: float = 255.0,
    ) -> None:
        if images.ndim != 4:
            raise DatasetError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment = augment
        self.max_value = max_value

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float() / self.max_value
        if self.augment is not None:
            image = self.augment(image)
        return (image - self.mean) / self.std, int(self.labels[index])

    def with_augment(self, augment: Callable[[torch.Tensor], torch.Tensor] | None):
        return TensorImageDataset(self.images, self.labels, tuple(self.mean.flatten().tolist()),
                                  tuple(self.std.flatten().tolist()), augment, self.max_value)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each class held out, fixed by ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def split_train_val(
    train_aug: Dataset, train_plain: Dataset, labels: np.ndarray, fraction: float, seed: int = 0
) -> tuple[Dataset, Dataset | None]:
    """Hold out a stratified validation subset (unaugmented) of the training data."""
    if fraction <= 0:
        return train_aug, None
    keep, held = stratified_split(labels, fraction, seed)
    return Subset(train_aug, keep.tolist()), Subset(train_plain, held.tolist())


def _labels_of(dataset: Dataset) -> np.ndarray:
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset)[np.asarray(dataset.indices)]
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = getattr(dataset, "targets", None)
    if labels is None:
        return np.asarray([int(dataset[i][1]) for i in range(len(dataset))])
    return np.asarray(labels)


def subset_train(splits: DataSplits, size: int, seed: int = 0) -> DataSplits:
    """Keep a stratified subset of ``size`` training samples (quick runs); val and test unchanged."""
    total = len(splits.train)
    if size >= total:
        return splits
    labels = _labels_of(splits.train)
    _, keep = stratified_split(labels, size / total, seed)
    return DataSplits(splits.info, Subset(splits.train, keep.tolist()), splits.test, splits.val)
