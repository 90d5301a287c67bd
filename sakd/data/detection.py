"""Data for detection and semantic segmentation: generated scenes (the embedded default), and
Pascal VOC and COCO loaders for users who have them. Nothing downloads.

Every set returns normalized images ``[C, H, W]`` of one fixed canvas size (``DatasetInfo.
image_size``) and, per task:

- ``detection``: a target dict with ``boxes`` float32 ``[M, 4]`` (x1, y1, x2, y2 in canvas
  pixels, x2 > x1, y2 > y1; pixel edges, so a box covering columns 3..6 is x1 = 3, x2 = 7),
  ``labels`` int64 ``[M]`` in ``0..K-1`` (no background class), ``iscrowd`` int64 ``[M]`` (1:
  ignored by mAP, never trained on), ``image_id`` int64, and with ``include_masks`` the instance
  ``masks`` uint8 ``[M, H, W]``; batches are collated by ``detection_collate`` into
  ``(images [B, C, H, W], list of target dicts)``.
- ``segmentation``: a class map int64 ``[H, W]`` with 0 = background, ``1..K-1`` the object
  classes and ``IGNORE_INDEX`` (255) on pixels to skip (VOC's object borders, COCO crowds, the
  letterbox padding); batches stack with the default collate.

Real images are letterboxed: resized to fit the canvas (aspect kept), normalized, then padded
at the bottom and right with 0, i.e. the mean colour, as torchvision's detection transform pads.
``DatasetInfo.num_classes`` is the number of object classes for detection and the number of
classes including the background for segmentation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, default_collate

from sakd.data.common import DatasetError, DatasetInfo, DataSplits, stratified_split

TASKS = ("detection", "segmentation")
IGNORE_INDEX = 255
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
               "sofa", "train", "tvmonitor")
Target = dict[str, torch.Tensor]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DatasetError(f"unknown task '{task}'; choose one of {TASKS}")


@dataclass
class DenseSplits(DataSplits):
    """``DataSplits`` of a detection or segmentation set, with the ``collate_fn`` its loaders
    need (``detection_collate`` or the default)."""

    task: str = "detection"
    collate_fn: Callable[[list], Any] = field(default=default_collate)
    category_ids: tuple[int, ...] = ()  # COCO: the category id of each label (label k -> ids[k])


# ---------------------------------------------------------------------------------------------
# batches


def detection_collate(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    """``[(image [C, H, W], target), ...]`` -> ``(images [B, C, H, W], [target, ...])``; every
    image must have the canvas size."""
    images = [image for image, _ in batch]
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) != 1:
        raise DatasetError(f"a detection batch needs images of one size, got {sorted(sizes)}; "
                           "letterbox them to the canvas (the loaders of sakd.data.detection do)")
    return torch.stack(images), [target for _, target in batch]


def collate_fn_for(task: str) -> Callable[[list], Any]:
    _check_task(task)
    return detection_collate if task == "detection" else default_collate


def targets_to(targets: list[Target], device: torch.device | str) -> list[Target]:
    """Move every tensor of a list of target dicts to ``device``."""
    return [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
             for k, v in t.items()} for t in targets]


def semantic_from_instances(masks: torch.Tensor, labels: torch.Tensor, size: tuple[int, int],
                            iscrowd: torch.Tensor | None = None) -> torch.Tensor:
    """Class map int64 ``[H, W]`` from instance masks ``[M, H, W]`` and labels ``0..K-1``: class
    ``label + 1`` on an instance's pixels (larger instances first, so a smaller one on top
    keeps its pixels), 0 elsewhere, ``IGNORE_INDEX`` under crowd masks not covered by an
    instance."""
    semantic = torch.zeros(size, dtype=torch.int64)
    if len(masks) == 0:
        return semantic
    crowd = iscrowd.bool() if iscrowd is not None else torch.zeros(len(masks), dtype=torch.bool)
    masks = masks.bool()
    for k in torch.nonzero(crowd).flatten().tolist():
        semantic[masks[k]] = IGNORE_INDEX
    areas = masks.flatten(1).sum(1)
    order = [k for k in torch.argsort(areas, descending=True, stable=True).tolist() if not crowd[k]]
    for k in order:
        semantic[masks[k]] = int(labels[k]) + 1
    return semantic


# ---------------------------------------------------------------------------------------------
# generated scenes


@dataclass(frozen=True)
class SceneSpec:
    """How scenes are drawn: objects from the source's images, each upscaled by an integer from
    ``scales`` (nearest neighbour), placed at random on a ``canvas x canvas`` black canvas with
    non-overlapping squares, ``min_objects..max_objects`` per scene (fewer when no free square is
    found in 50 tries). A pixel belongs to an object when its intensity is at least
    ``mask_threshold`` (in [0, 1]); the box is the tight box of that mask."""

    canvas: int = 64
    scales: tuple[int, ...] | None = None  # None: the source's default
    min_objects: int = 1
    max_objects: int = 3
    train_scenes: int = 2000
    test_scenes: int = 500
    mask_threshold: float | None = None  # None: the source's default
    seed: int = 0

    def __post_init__(self) -> None:
        if self.canvas < 8:
            raise DatasetError(f"scene canvas must be >= 8 px, got {self.canvas}")
        if not 0 <= self.min_objects <= self.max_objects or self.max_objects < 1:
            raise DatasetError(f"need 0 <= min_objects <= max_objects >= 1, got "
                               f"{self.min_objects}..{self.max_objects}")
        if self.scales is not None and (not self.scales or min(self.scales) < 1):
            raise DatasetError(f"scales must be positive integers, got {self.scales}")
        if self.train_scenes < 1 or self.test_scenes < 1:
            raise DatasetError("train_scenes and test_scenes must be >= 1")
        if self.mask_threshold is not None and not 0 < self.mask_threshold <= 1:
            raise DatasetError(f"mask_threshold must lie in (0, 1], got {self.mask_threshold}")


@dataclass(frozen=True)
class _Source:
    objects_train: np.ndarray  # float32 [P, h, w] in [0, 1]
    labels_train: np.ndarray  # int64 [P]
    objects_test: np.ndarray
    labels_test: np.ndarray
    class_names: tuple[str, ...]
    scales: tuple[int, ...]
    mask_threshold: float


def _digits_source() -> _Source:
    from sklearn.datasets import load_digits

    from sakd.data.digits import SPLIT_SEED, TEST_FRACTION

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    train, test = stratified_split(bunch.target, TEST_FRACTION, SPLIT_SEED)  # as the digits set
    return _Source(images[train], bunch.target[train].astype(np.int64), images[test],
                   bunch.target[test].astype(np.int64), tuple(str(d) for d in range(10)),
                   scales=(2, 3, 4), mask_threshold=0.25)


def _fashion_source(root: str | None) -> _Source:
    from sakd.data.fashion_mnist import CLASSES, load_fashion_mnist_splits

    splits = load_fashion_mnist_splits(root, augment=False, val_fraction=0.0)
    arrays = [(d.images[:, 0].numpy().astype(np.float32) / 255.0, d.labels.numpy())
              for d in (splits.train, splits.test)]
    return _Source(arrays[0][0], arrays[0][1], arrays[1][0], arrays[1][1], CLASSES,
                   scales=(1,), mask_threshold=0.1)


SCENE_SOURCES: dict[str, Callable[[str | None], _Source]] = {
    "digits": lambda root: _digits_source(),
    "fashion-mnist": _fashion_source,
}
SCENE_NAMES = {"digits": "digit-scenes", "fashion-mnist": "fashion-scenes"}  # the data set names


@dataclass(frozen=True)
class Scenes:
    """Drawn scenes: ``images`` uint8 ``[N, 1, H, W]`` (intensity x 255), ``instances`` uint8
    ``[N, H, W]`` (0 = background, k = object k-1 of that scene), and per scene ``boxes`` float32
    ``[M, 4]`` and ``labels`` int64 ``[M]``."""

    images: np.ndarray
    instances: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


def draw_scenes(objects: np.ndarray, labels: np.ndarray, count: int, canvas: int,
                scales: Sequence[int], min_objects: int, max_objects: int, mask_threshold: float,
                rng: np.random.Generator) -> Scenes:
    """``count`` scenes of objects drawn (with replacement) from ``objects`` ``[P, h, w]``."""
    h, w = objects.shape[1:]
    if max(scales) * max(h, w) > canvas:
        raise DatasetError(f"an object of {h}x{w} px upscaled {max(scales)}x does not fit a "
                           f"{canvas}-px canvas; lower the scales or enlarge the canvas")
    images = np.zeros((count, 1, canvas, canvas), dtype=np.uint8)
    instances = np.zeros((count, canvas, canvas), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for n in range(count):
        image = np.zeros((canvas, canvas), dtype=np.float32)
        taken: list[tuple[int, int, int, int]] = []  # y0, x0, y1, x1 of the placed squares
        boxes, names = [], []
        for _ in range(int(rng.integers(min_objects, max_objects + 1))):
            index = int(rng.integers(len(objects)))
            scale = int(rng.choice(scales))
            size_y, size_x = h * scale, w * scale
            for _attempt in range(50):
                y0 = int(rng.integers(0, canvas - size_y + 1))
                x0 = int(rng.integers(0, canvas - size_x + 1))
                square = (y0, x0, y0 + size_y, x0 + size_x)
                if all(square[2] <= t[0] or t[2] <= square[0] or square[3] <= t[1] or t[3] <= square[1]
                       for t in taken):
                    break
            else:
                continue  # no free place for this object
            patch = np.kron(objects[index], np.ones((scale, scale), dtype=np.float32))
            mask = patch >= mask_threshold
            if not mask.any():
                continue  # a blank source image has no object to box
            taken.append(square)
            image[y0:y0 + size_y, x0:x0 + size_x] = patch
            instance = instances[n, y0:y0 + size_y, x0:x0 + size_x]
            instance[mask] = len(boxes) + 1
            ys, xs = np.nonzero(mask)
            boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
            names.append(int(labels[index]))
        images[n, 0] = np.round(image * 255.0).astype(np.uint8)
        all_boxes.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(names, dtype=np.int64))
    return Scenes(images, instances, all_boxes, all_labels)


class SceneDataset(Dataset):
    """Generated scenes as a detection or segmentation set (see the module docstring)."""

    def __init__(self, scenes: Scenes, task: str, mean: Sequence[float], std: Sequence[float],
                 include_masks: bool = False) -> None:
        _check_task(task)
        self.scenes = scenes
        self.task = task
        self.include_masks = include_masks
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.scenes.images[index]).float() / 255.0
        image = (image - self.mean) / self.std
        instances = torch.from_numpy(self.scenes.instances[index]).long()
        labels = torch.from_numpy(self.scenes.labels[index])
        if self.task == "segmentation":
            lookup = torch.cat([torch.zeros(1, dtype=torch.int64), labels + 1])
            return image, lookup[instances]
        target = {"boxes": torch.from_numpy(self.scenes.boxes[index]).clone(), "labels": labels.clone(),
                  "iscrowd": torch.zeros(len(labels), dtype=torch.int64),
                  "image_id": torch.tensor(index, dtype=torch.int64)}
        if self.include_masks:
            ids = torch.arange(1, len(labels) + 1).view(-1, 1, 1)
            target["masks"] = (instances.unsqueeze(0) == ids).to(torch.uint8)
        return image, target


def load_scene_splits(source: str = "digits", task: str = "detection", spec: SceneSpec | None = None,
                      val_fraction: float = 0.0, root: str | None = None,
                      include_masks: bool = False) -> DenseSplits:
    """Scenes of ``source`` objects (``digits``: scikit-learn's bundled 8x8 digits, no files
    needed; ``fashion-mnist``: its IDX files from ``root`` or /usr/share/datasets/fashion-mnist).

    Train and val scenes use the source's training images (val a stratified ``val_fraction`` of
    them, and ``val_fraction`` of the training scenes), test scenes its test images, so no
    object appears in two splits. Deterministic from ``spec.seed``. Normalization: the mean and
    std of the training scenes' pixels.
    """
    _check_task(task)
    if source not in SCENE_SOURCES:
        raise DatasetError(f"unknown scene source '{source}'; choose one of {sorted(SCENE_SOURCES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    spec = spec or SceneSpec()
    src = SCENE_SOURCES[source](root)
    scales = tuple(spec.scales or src.scales)
    threshold = spec.mask_threshold or src.mask_threshold
    rng_train, rng_val, rng_test = (np.random.default_rng(s)
                                    for s in np.random.SeedSequence(spec.seed).spawn(3))
    objects, labels = src.objects_train, src.labels_train
    n_val = int(round(val_fraction * spec.train_scenes))
    if n_val:
        keep, held = stratified_split(labels, val_fraction, spec.seed)
        val_objects, val_labels = objects[held], labels[held]
        objects, labels = objects[keep], labels[keep]
    draw = dict(canvas=spec.canvas, scales=scales, min_objects=spec.min_objects,
                max_objects=spec.max_objects, mask_threshold=threshold)
    train = draw_scenes(objects, labels, spec.train_scenes - n_val, rng=rng_train, **draw)
    test = draw_scenes(src.objects_test, src.labels_test, spec.test_scenes, rng=rng_test, **draw)
    val = draw_scenes(val_objects, val_labels, n_val, rng=rng_val, **draw) if n_val else None
    pixels = train.images.astype(np.float64) / 255.0
    mean, std = (float(pixels.mean()),), (float(pixels.std()),)
    names = src.class_names if task == "detection" else ("background", *src.class_names)
    info = DatasetInfo(SCENE_NAMES[source], len(names), 1, (spec.canvas, spec.canvas), mean, std, names)

    def dataset(scenes: Scenes) -> SceneDataset:
        return SceneDataset(scenes, task, mean, std, include_masks)

    return DenseSplits(info, dataset(train), dataset(test), dataset(val) if val else None,
                       task=task, collate_fn=collate_fn_for(task))


# ---------------------------------------------------------------------------------------------
# real images: letterbox to the canvas


def letterbox(image: torch.Tensor, size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
              boxes: torch.Tensor | None = None, masks: torch.Tensor | None = None,
              semantic: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None,
                                                               torch.Tensor | None, torch.Tensor | None]:
    """Fit ``image`` (float ``[C, h, w]`` in [0, 1]) into the canvas ``size`` = (H, W): resize
    by ``min(H/h, W/w)`` (bilinear, antialiased), normalize, pad bottom/right with 0. Boxes
    ``[M, 4]`` are scaled alike; instance ``masks`` ``[M, h, w]`` and the class map ``semantic``
    ``[h, w]`` are resized by nearest neighbour and padded with 0 and ``IGNORE_INDEX``."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    height, width = size
    h, w = image.shape[-2:]
    scale = min(height / h, width / w)
    new_h, new_w = min(height, max(1, round(h * scale))), min(width, max(1, round(w * scale)))
    pad = [0, 0, width - new_w, height - new_h]  # left, top, right, bottom
    image = TF.resize(image, [new_h, new_w], antialias=True)
    image = TF.normalize(image, list(mean), list(std))
    image = TF.pad(image, pad, fill=0.0)
    if boxes is not None:
        factors = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h], dtype=torch.float32)
        boxes = boxes.float() * factors
    if masks is not None:
        masks = TF.resize(masks, [new_h, new_w], interpolation=InterpolationMode.NEAREST) if len(masks) \
            else masks.new_zeros((0, new_h, new_w))
        masks = TF.pad(masks, pad, fill=0)
    if semantic is not None:
        semantic = TF.resize(semantic.unsqueeze(0), [new_h, new_w],
                             interpolation=InterpolationMode.NEAREST)
        semantic = TF.pad(semantic, pad, fill=IGNORE_INDEX)[0]
    return image, boxes, masks, semantic


def _hflip(image: torch.Tensor, boxes: torch.Tensor | None, masks: torch.Tensor | None,
           semantic: torch.Tensor | None):
    width = image.shape[-1]
    image = image.flip(-1)
    if boxes is not None and len(boxes):
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    masks = masks.flip(-1) if masks is not None else None
    semantic = semantic.flip(-1) if semantic is not None else None
    return image, boxes, masks, semantic


def _valid(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


class _LetterboxedSet(Dataset):
    """Common path of the VOC and COCO sets: flip (training), letterbox, target assembly."""

    def __init__(self, task: str, size: tuple[int, int], mean, std, augment: bool, train: bool,
                 include_masks: bool) -> None:
        _check_task(task)
        self.task, self.size, self.mean, self.std = task, (int(size[0]), int(size[1])), mean, std
        self.augment, self.train, self.include_masks = augment, train, include_masks

    def _sample(self, image: torch.Tensor, image_id: int, boxes: torch.Tensor, labels: torch.Tensor,
                iscrowd: torch.Tensor, masks: torch.Tensor | None, semantic: torch.Tensor | None):
        keep = _valid(boxes)
        if self.train:
            keep &= iscrowd == 0  # crowds and VOC's difficult objects are never trained on
        if self.task == "detection":
            boxes, labels, iscrowd = boxes[keep], labels[keep], iscrowd[keep]
            masks = masks[keep] if masks is not None else None
        if self.augment and self.train and bool(torch.rand(()) < 0.5):
            image, boxes, masks, semantic = _hflip(image, boxes, masks, semantic)
        image, boxes, masks, semantic = letterbox(image, self.size, self.mean, self.std, boxes,
                                                  masks, semantic)
        if self.task == "segmentation":
            return image, semantic
        keep = _valid(boxes)  # boxes thinner than a pixel may vanish at the canvas scale
        target = {"boxes": boxes[keep], "labels": labels[keep].long(), "iscrowd": iscrowd[keep].long(),
                  "image_id": torch.tensor(image_id, dtype=torch.int64)}
        if self.include_masks and masks is not None:
            target["masks"] = masks[keep].to(torch.uint8)
        return image, target


def _to_float(image) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.to_dtype(TF.to_image(image), torch.float32, scale=True)


# ---------------------------------------------------------------------------------------------
# Pascal VOC


VOC_HOW_TO = ("Download VOCtrainval_11-May-2012.tar (or VOCtrainval_06-Nov-2007.tar and "
              "VOCtest_06-Nov-2007.tar) from http://host.robots.ox.ac.uk/pascal/VOC/, extract it "
              "in a folder (it creates VOCdevkit/VOC<year>/) and pass that folder as the data root.")
VOC_SPLITS = {"2012": ("train", "val"), "2007": ("trainval", "test")}  # (train, test) image sets


class VOCSet(_LetterboxedSet):
    """One image set of Pascal VOC through torchvision's ``VOCDetection`` / ``VOCSegmentation``.

    Detection: boxes from the XML annotations (1-based inclusive pixel indices ``xmin..xmax``
    -> edges ``xmin - 1 .. xmax``), labels in the order of ``VOC_CLASSES``; ``difficult``
    objects are dropped for training and marked ``iscrowd`` (ignored by mAP) otherwise, as VOC's
    protocol ignores them. Segmentation: ``SegmentationClass`` PNGs (0 background, 1..20, 255
    borders).
    """

    def __init__(self, root: Path, year: str, image_set: str, task: str, size: tuple[int, int],
                 augment: bool, train: bool) -> None:
        from torchvision import datasets

        super().__init__(task, size, IMAGENET_MEAN, IMAGENET_STD, augment, train, include_masks=False)
        cls = datasets.VOCDetection if task == "detection" else datasets.VOCSegmentation
        try:
            self.voc = cls(str(root), year=year, image_set=image_set, download=False)
        except (RuntimeError, OSError, ValueError) as exc:
            raise DatasetError(f"Pascal VOC {year} '{image_set}' cannot be read under {root} "
                               f"({exc}). {VOC_HOW_TO}") from exc
        self.index = {name: i for i, name in enumerate(VOC_CLASSES)}

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, index: int):
        image, target = self.voc[index]
        pixels = _to_float(image)
        if self.task == "segmentation":
            semantic = torch.from_numpy(np.array(target, dtype=np.int64))
            empty = torch.zeros((0, 4))
            return self._sample(pixels, index, empty, torch.zeros(0), torch.zeros(0), None, semantic)
        objects = target["annotation"].get("object", [])
        boxes, labels, difficult = [], [], []
        for obj in objects:
            name = obj["name"].strip()
            if name not in self.index:
                raise DatasetError(f"VOC annotation {self.voc.annotations[index]} names an unknown "
                                   f"class '{name}' (expected one of the 20 VOC classes)")
            bb = obj["bndbox"]
            boxes.append([float(bb["xmin"]) - 1, float(bb["ymin"]) - 1, float(bb["xmax"]), float(bb["ymax"])])
            labels.append(self.index[name])
            difficult.append(int(obj.get("difficult", "0") or 0))
        return self._sample(pixels, index, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                            torch.tensor(labels, dtype=torch.int64), torch.tensor(difficult, dtype=torch.int64),
                            None, None)


def _check_voc(root: Path, year: str, task: str) -> None:
    base = root / "VOCdevkit" / f"VOC{year}"
    need = [base / "JPEGImages"]
    split_dir = "Main" if task == "detection" else "Segmentation"
    need.append(base / ("Annotations" if task == "detection" else "SegmentationClass"))
    need += [base / "ImageSets" / split_dir / f"{s}.txt" for s in VOC_SPLITS[year]]
    missing = [p for p in need if not p.exists()]
    if missing:
        raise DatasetError(f"Pascal VOC {year} ({task}) not found: looked for "
                           f"{', '.join(str(p) for p in missing)}. {VOC_HOW_TO}")


def load_voc_splits(root: str | None, task: str = "detection", image_size: tuple[int, int] = (320, 320),
                    year: str = "2012", augment: bool = True, val_fraction: float = 0.0,
                    seed: int = 0) -> DenseSplits:
    """Pascal VOC from ``root`` (the folder holding ``VOCdevkit/``; default ``data/voc``).

    2012: train = ``train``, test = ``val`` (the test set's annotations are not public);
    2007: train = ``trainval``, test = ``test``. ``val_fraction`` holds out part of the training
    images (unaugmented). Images are letterboxed to ``image_size``.
    """
    _check_task(task)
    if year not in VOC_SPLITS:
        raise DatasetError(f"VOC year must be one of {sorted(VOC_SPLITS)}, got '{year}'")
    folder = Path(root) if root else Path("data") / "voc"
    if folder.name == "VOCdevkit":
        folder = folder.parent
    _check_voc(folder, year, task)
    train_set, test_set = VOC_SPLITS[year]
    train = VOCSet(folder, year, train_set, task, image_size, augment, train=True)
    plain = VOCSet(folder, year, train_set, task, image_size, False, train=True)
    test = VOCSet(folder, year, test_set, task, image_size, False, train=False)
    names = VOC_CLASSES if task == "detection" else ("background", *VOC_CLASSES)
    info = DatasetInfo(f"voc{year}", len(names), 3, tuple(image_size), IMAGENET_MEAN, IMAGENET_STD, names)
    train, val = _hold_out(train, plain, val_fraction, seed)
    return DenseSplits(info, train, test, val, task=task, collate_fn=collate_fn_for(task))


def _hold_out(train: Dataset, plain: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """A random ``fraction`` of the training images as an unaugmented validation subset."""
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"val_fraction must lie in [0, 1), got {fraction}")
    if fraction == 0:
        return train, None
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = int(round(fraction * len(train)))
    if n_val == 0 or n_val == len(train):
        raise DatasetError(f"val_fraction {fraction} of {len(train)} training images leaves an empty split")
    return Subset(train, np.sort(order[n_val:]).tolist()), Subset(plain, np.sort(order[:n_val]).tolist())


# ---------------------------------------------------------------------------------------------
# COCO


COCO_HOW_TO = ("Download train2017.zip, val2017.zip and annotations_trainval2017.zip from "
               "https://cocodataset.org/#download, extract them into one folder (giving "
               "train2017/, val2017/ and annotations/instances_{train,val}2017.json) and pass that "
               "folder as the data root.")


class CocoSet(_LetterboxedSet):
    """One COCO split through torchvision's ``CocoDetection`` (pycocotools) and its transforms-v2
    wrapper (boxes XYWH -> XYXY, masks from polygons or RLE). Category ids map to contiguous
    labels in increasing id order (``category_ids[label]``); crowd annotations are dropped for
    training and kept as ``iscrowd`` otherwise (detection), or become ``IGNORE_INDEX``
    (segmentation)."""

    def __init__(self, images: Path, annotations: Path, category_ids: Sequence[int], task: str,
                 size: tuple[int, int], augment: bool, train: bool, include_masks: bool) -> None:
        from torchvision import datasets

        super().__init__(task, size, IMAGENET_MEAN, IMAGENET_STD, augment, train, include_masks)
        try:
            coco = datasets.CocoDetection(str(images), str(annotations))
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"COCO annotations {annotations} cannot be read ({exc}). "
                               f"{COCO_HOW_TO}") from exc
        keys = {"image_id", "boxes", "labels", "iscrowd"}
        self.with_masks = task == "segmentation" or include_masks
        if self.with_masks:
            keys.add("masks")
        self.coco = datasets.wrap_dataset_for_transforms_v2(coco, target_keys=keys)
        self.label_of = {int(c): i for i, c in enumerate(category_ids)}
        self.images = images

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int):
        try:
            image, target = self.coco[index]
        except FileNotFoundError as exc:
            raise DatasetError(f"COCO image missing: {exc.filename} (listed in the annotations, "
                               f"not in {self.images})") from exc
        pixels = _to_float(image)
        size = tuple(pixels.shape[-2:])
        image_id = int(target["image_id"])
        if "boxes" not in target:  # an image without annotations
            boxes, labels, iscrowd = torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
            masks = torch.zeros((0, *size), dtype=torch.uint8) if self.with_masks else None
        else:
            boxes = target["boxes"].as_subclass(torch.Tensor).float()
            try:
                labels = torch.tensor([self.label_of[int(c)] for c in target["labels"]], dtype=torch.int64)
            except KeyError as exc:
                raise DatasetError(f"COCO image {image_id} has category id {exc.args[0]}, which is "
                                   "not among the training annotations' categories") from exc
            iscrowd = torch.as_tensor(target["iscrowd"], dtype=torch.int64)
            masks = target["masks"].as_subclass(torch.Tensor) if "masks" in target else None
        semantic = None
        if self.task == "segmentation":
            semantic = semantic_from_instances(masks, labels, size, iscrowd)
        return self._sample(pixels, image_id, boxes, labels, iscrowd, masks, semantic)


def coco_categories(annotations: Path) -> tuple[list[int], list[str]]:
    """Category ids (increasing) and names of a COCO annotation file."""
    try:
        categories = json.loads(annotations.read_text())["categories"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"COCO annotation file {annotations} has no readable 'categories' "
                           f"({exc}). {COCO_HOW_TO}") from exc
    categories = sorted(categories, key=lambda c: int(c["id"]))
    return [int(c["id"]) for c in categories], [str(c["name"]) for c in categories]


def load_coco_splits(root: str | None, task: str = "detection", image_size: tuple[int, int] = (320, 320),
                     year: str = "2017", augment: bool = True, val_fraction: float = 0.0,
                     include_masks: bool = False, seed: int = 0) -> DenseSplits:
    """COCO instances from ``root`` (default ``data/coco``): train = ``train{year}``, test =
    ``val{year}``; letterboxed to ``image_size``. Segmentation: one class map per image from
    the instance masks (80 classes + background)."""
    _check_task(task)
    folder = Path(root) if root else Path("data") / "coco"
    need = {split: (folder / f"{split}{year}", folder / "annotations" / f"instances_{split}{year}.json")
            for split in ("train", "val")}
    missing = [str(p) for pair in need.values() for p in pair if not p.exists()]
    if missing:
        raise DatasetError(f"COCO {year} not found: looked for {', '.join(missing)}. {COCO_HOW_TO}")
    ids, names = coco_categories(need["train"][1])
    test_ids, _ = coco_categories(need["val"][1])
    if test_ids != ids:
        raise DatasetError(f"COCO {year}: the train and val annotation files list different "
                           f"categories ({len(ids)} vs {len(test_ids)}); use files of one release")

    def split(name: str, aug: bool, train: bool) -> CocoSet:
        return CocoSet(need[name][0], need[name][1], ids, task, image_size, aug, train, include_masks)

    train, plain, test = split("train", augment, True), split("train", False, True), split("val", False, False)
    class_names = tuple(names) if task == "detection" else ("background", *names)
    info = DatasetInfo(f"coco{year}", len(class_names), 3, tuple(image_size), IMAGENET_MEAN,
                       IMAGENET_STD, class_names)
    train, val = _hold_out(train, plain, val_fraction, seed)
    return DenseSplits(info, train, test, val, task=task, collate_fn=collate_fn_for(task),
                       category_ids=tuple(ids))


# ---------------------------------------------------------------------------------------------
# by name


DENSE_DATASETS = ("digit-scenes", "fashion-scenes", "voc", "coco")


def load_dense_splits(name: str, task: str, root: str | None = None,
                      image_size: tuple[int, int] | None = None, augment: bool = True,
                      val_fraction: float = 0.0, seed: int = 0, **options: Any) -> DenseSplits:
    """A detection or segmentation set by name: ``digit-scenes`` (embedded default),
    ``fashion-scenes``, ``voc`` or ``coco``. ``image_size``: the canvas (square for scenes;
    default 64 for scenes, 320x320 for VOC and COCO). ``options``: ``SceneSpec`` fields for
    scenes, ``year`` for VOC/COCO, ``include_masks`` for scenes and COCO."""
    _check_task(task)
    if name in ("digit-scenes", "fashion-scenes"):
        source = {v: k for k, v in SCENE_NAMES.items()}[name]
        include_masks = bool(options.pop("include_masks", False))
        if image_size is not None:
            if image_size[0] != image_size[1]:
                raise DatasetError(f"scenes have a square canvas, got image_size {tuple(image_size)}")
            options["canvas"] = int(image_size[0])
        try:
            spec = SceneSpec(seed=seed, **options)
        except TypeError as exc:
            raise DatasetError(f"bad scene option: {exc}") from exc
        return load_scene_splits(source, task, spec, val_fraction, root, include_masks)
    size = tuple(image_size) if image_size is not None else (320, 320)
    if name == "voc":
        return load_voc_splits(root, task, size, augment=augment, val_fraction=val_fraction, seed=seed, **options)
    if name == "coco":
        return load_coco_splits(root, task, size, augment=augment, val_fraction=val_fraction, seed=seed, **options)
    raise DatasetError(f"unknown detection/segmentation data set '{name}'; choose one of {DENSE_DATASETS}")
